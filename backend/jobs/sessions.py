"""Housekeeping of login sessions."""

from __future__ import annotations

from backend.db import session_scope
from backend.jobs.registry import periodic
from backend.services import accounts


@periodic(id="purge-expired-sessions", seconds=3600, description="Close expired login sessions.")
def purge_expired_sessions() -> None:
    with session_scope() as session:
        accounts.purge_expired_sessions(session)
