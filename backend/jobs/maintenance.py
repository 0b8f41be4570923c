"""Periodic jobs of the night shift, and the hourly invoice reconciliation (each runs once per
tick across scheduler processes)."""

from __future__ import annotations

from backend.db import get_engine, session_scope
from backend.invoicing import reconciliation
from backend.platform import retention as maintenance
from backend.platform.periodic import periodic


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


@periodic(
    id="invoice-reconciliation",
    seconds=3600,
    description="Compare recent shows' invoices with Stripe's; alert once on new differences.",
)
def invoice_reconciliation() -> None:
    # Takes the engine: Stripe is called between transactions, never inside one.
    reconciliation.reconcile_recent(get_engine())
