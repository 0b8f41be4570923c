"""The night shift: provider health alerts, retention of old rows, and the sweep for signed,
paid contracts that never became an event."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, case, delete, exists, func, select
from sqlalchemy.orm import Session

from backend.platform.alerts import raise_once
from models import (
    AlertPriority,
    Contract,
    ContractStatus,
    Event,
    InboundEvent,
    InboundStatus,
    IntegrationLog,
    JobStatus,
    OutboxJob,
    Payment,
    PaymentKind,
    PaymentStatus,
    utcnow,
)

FAILURE_RATE_ALERT = 0.5
HEALTH_WINDOW = dt.timedelta(minutes=15)
HEALTH_MIN_CALLS = 10


def check_provider_health(session: Session, *, now: dt.datetime | None = None) -> int:
    """Alert where more than half of a workspace's calls to a provider failed in 15 minutes."""
    now = now or utcnow()
    rows = session.execute(
        select(
            IntegrationLog.workspace_id,
            IntegrationLog.provider,
            func.count(),
            func.sum(case((IntegrationLog.status != "ok", 1), else_=0)),
        )
        .where(IntegrationLog.at >= now - HEALTH_WINDOW)
        .group_by(IntegrationLog.workspace_id, IntegrationLog.provider)
    ).all()
    raised = 0
    for workspace_id, provider, calls, failures in rows:
        failures = int(failures or 0)
        if calls >= HEALTH_MIN_CALLS and failures / calls > FAILURE_RATE_ALERT:
            raised += raise_once(
                session,
                workspace_id=workspace_id,
                type_="provider.failing",
                entity_type="provider",
                entity_id=provider,
                priority=AlertPriority.HIGH,
                message=f"{failures} of {calls} calls to {provider} failed in the last 15 "
                "minutes. Work for it is waiting in the queue; see Health.",
            )
    return raised


def purge_old_rows(
    session: Session,
    *,
    now: dt.datetime | None = None,
    keep_jobs: dt.timedelta = dt.timedelta(days=14),
    keep_events: dt.timedelta = dt.timedelta(days=30),
    keep_logs: dt.timedelta = dt.timedelta(days=90),
) -> dict[str, int]:
    """Retention: finished jobs, handled webhook bodies (they hold personal data) and old call
    logs go; dead jobs and unhandled events stay until someone deals with them."""
    now = now or utcnow()
    counts = {}
    for name, stmt in (
        (
            "outbox_jobs",
            delete(OutboxJob).where(
                OutboxJob.status == JobStatus.DONE, OutboxJob.finished_at < now - keep_jobs
            ),
        ),
        (
            "inbound_events",
            delete(InboundEvent).where(
                InboundEvent.status.in_([InboundStatus.HANDLED, InboundStatus.IGNORED]),
                InboundEvent.received_at < now - keep_events,
            ),
        ),
        ("integration_logs", delete(IntegrationLog).where(IntegrationLog.at < now - keep_logs)),
    ):
        result = session.execute(stmt.execution_options(synchronize_session=False))
        counts[name] = int(getattr(result, "rowcount", 0) or 0)
    return counts


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
        raised += raise_once(
            session,
            workspace_id=workspace_id,
            type_="contract.orphaned",
            entity_type="contract",
            entity_id=str(contract_id),
            priority=AlertPriority.HIGH,
            message=f"Contract '{title}' is signed and its deposit is paid, but no event was "
            "created. Open Jobs to replay the handoff.",
        )
    return raised
