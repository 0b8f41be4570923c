"""Periodic jobs of the night shift (each runs once per tick across scheduler processes)."""

from __future__ import annotations

from backend.db import session_scope
from backend.jobs.registry import periodic
from backend.services import maintenance


@periodic(
    id="provider-health",
    seconds=300,
    description="Alert on providers failing more than half their calls in 15 minutes.",
)
def provider_health() -> None:
    with session_scope() as session:
        maintenance.check_provider_health(session)


@periodic(
    id="orphaned-contracts",
    seconds=86400,
    description="Find signed, paid contracts that never became an event.",
)
def orphaned_contracts() -> None:
    with session_scope() as session:
        maintenance.sweep_orphaned_contracts(session)


@periodic(
    id="retention",
    seconds=86400,
    description="Purge finished jobs, handled webhook bodies and old call logs.",
)
def retention() -> None:
    with session_scope() as session:
        maintenance.purge_old_rows(session)
