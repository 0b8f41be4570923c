"""The sweep for signed, paid contracts that never became an event: the handoff from contract
to booked event failed somewhere, and someone should know by morning."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session

from backend.platform.incidents import raise_incident
from models import (
    AlertPriority,
    Contract,
    ContractStatus,
    Event,
    Payment,
    PaymentKind,
    PaymentStatus,
)


def sweep_orphaned_contracts(session: Session, *, now: dt.datetime | None = None) -> int:
    """Signed contracts whose deposit is paid but that never became an event: the handoff
    failed somewhere. One alert each, for the morning."""
    paid_deposit = exists().where(
        and_(
            Payment.contract_id == Contract.id,
            Payment.kind == PaymentKind.DEPOSIT,
            Payment.status == PaymentStatus.PAID,
        )
    )
    has_event = exists().where(Event.contract_id == Contract.id)
    orphans = session.execute(
        select(Contract.id, Contract.workspace_id, Contract.title).where(
            Contract.status == ContractStatus.SIGNED, paid_deposit, ~has_event
        )
    ).all()
    raised = 0
    for contract_id, workspace_id, title in orphans:
        raised += raise_incident(
            session,
            workspace_id=workspace_id,
            rule="contract.orphaned",
            entity_type="contract",
            entity_id=str(contract_id),
            priority=AlertPriority.HIGH,
            message=f"Contract '{title}' is signed and its deposit is paid, but no event was "
            "created. Open Jobs to replay the handoff.",
            # The nightly sweep finding it again is the same condition, not a new happening.
            occurrence=False,
        ).new
    return raised
