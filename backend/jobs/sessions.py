"""Housekeeping of login sessions."""

from __future__ import annotations

from backend.accounts import service as accounts
from backend.db import session_scope
from backend.platform.periodic import periodic


@periodic(id="purge-expired-sessions", seconds=3600, description="Close expired login sessions.")
def purge_expired_sessions() -> None:
    with session_scope() as session:
        accounts.purge_expired_sessions(session)
