"""What each call's outcome does to a workspace's integration, and the state the pages show.

Only a refused credential turns an integration Error (with an audit row): an outage, a timeout
or a 5xx leaves it Active, and its ``last_error`` says what the provider did, so that pages can
say "Stripe is unavailable; work is waiting" instead of "not connected". Any later call that
succeeds (a connection test or a job) clears that, and brings an Error integration back to
Active (audited), and the jobs that were waiting for it run now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.platform import audit, circuits, outbox_operators
from backend.platform.actors import Actor
from backend.platform.provider_failures import Failure, classify, describe, provider_name
from models import Integration, IntegrationStatus, JobStatus, OutboxJob, utcnow

# What a page shows for a provider in a workspace.
NOT_CONNECTED = "not_connected"
REFUSED = "refused"
UNAVAILABLE = "unavailable"
READY = "ready"


def _row(session: Session, workspace_id: int, provider: str) -> Integration | None:
    return session.scalars(
        select(Integration).where(
            Integration.workspace_id == workspace_id, Integration.provider == provider
        )
    ).first()


def succeeded(
    session: Session, *, workspace_id: int, provider: str, actor: Actor | str = "scheduler"
) -> bool:
    """A call to the provider worked. True when that ended an Error or unavailable state (the
    workspace's jobs waiting on the provider are then due now)."""
    row = _row(session, workspace_id, provider)
    if row is None or row.status is IntegrationStatus.INACTIVE:
        return False
    if row.status is IntegrationStatus.ERROR:
        previous = row.last_error
        row.status, row.last_error = IntegrationStatus.ACTIVE, None
        row.last_checked_at = utcnow()
        audit.record(
            session,
            actor=actor,
            action="integration.recovered",
            target=f"integration:{provider}",
            workspace_id=workspace_id,
            details={"status": row.status.value, "was": (previous or "")[:500]},
        )
    elif row.last_error is not None:
        row.last_error = None
    else:
        return False
    outbox_operators.wake_waiting(session, provider=provider, workspace_id=workspace_id)
    return True


def failed(
    session: Session,
    *,
    workspace_id: int,
    provider: str,
    error: BaseException,
    actor: Actor | str = "scheduler",
) -> Failure:
    """A call to the provider failed: a refused credential turns the integration Error (once,
    audited); an unavailable provider is noted on it and nothing else changes."""
    failure = classify(error)
    if failure not in (Failure.REFUSED_CREDENTIAL, Failure.UNAVAILABLE):
        return failure
    row = _row(session, workspace_id, provider)
    if row is None or row.status is IntegrationStatus.INACTIVE:
        return failure
    message = describe(error)
    if failure is Failure.REFUSED_CREDENTIAL and row.status is IntegrationStatus.ACTIVE:
        row.status = IntegrationStatus.ERROR
        row.last_checked_at = utcnow()
        audit.record(
            session,
            actor=actor,
            action="integration.refused",
            target=f"integration:{provider}",
            workspace_id=workspace_id,
            details={"status": row.status.value, "error": message[:500]},
        )
    if row.status is IntegrationStatus.ERROR and failure is Failure.UNAVAILABLE:
        # Keep why the key was refused: an outage meanwhile says nothing about the key.
        return failure
    if row.last_error != message:
        # Compared first: during an outage every failing job would otherwise rewrite the row.
        row.last_error = message
    return failure


@dataclass(frozen=True)
class ProviderState:
    """A provider as a page shows it: ``state`` is one of NOT_CONNECTED, REFUSED, UNAVAILABLE,
    READY; ``message`` is the sentence to show (empty when ready); ``waiting`` counts the
    workspace's jobs queued for the provider."""

    provider: str
    state: str
    message: str
    waiting: int

    @property
    def can_queue_work(self) -> bool:
        """New work may be queued: it runs when the provider answers again."""
        return self.state in (READY, UNAVAILABLE)


def waiting_jobs(session: Session, *, workspace_id: int, provider: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(OutboxJob)
            .where(
                OutboxJob.workspace_id == workspace_id,
                OutboxJob.provider == provider,
                OutboxJob.status.in_([JobStatus.PENDING, JobStatus.RUNNING]),
            )
        )
        or 0
    )


def state(session: Session, *, workspace_id: int, provider: str) -> ProviderState:
    row = _row(session, workspace_id, provider)
    if row is None or row.status is IntegrationStatus.INACTIVE:
        return _said(provider, row, 0, None)
    waiting = waiting_jobs(session, workspace_id=workspace_id, provider=provider)
    # The workspace's own account's breaker: another workspace's outage is not this one's.
    breaker = next(
        (c for c in circuits.states(session, workspace_id=workspace_id) if c.provider == provider),
        None,
    )
    return _said(provider, row, waiting, breaker)


def states(
    session: Session, *, workspace_id: int, integrations: Sequence[Integration]
) -> dict[str, ProviderState]:
    """``state`` of each of the workspace's ``integrations`` (loaded by the caller), in three
    queries whatever their number: what the Health page's tiles say."""
    if not integrations:
        return {}
    providers = [i.provider for i in integrations]
    waiting = dict(
        session.execute(
            select(OutboxJob.provider, func.count())
            .where(
                OutboxJob.workspace_id == workspace_id,
                OutboxJob.provider.in_(providers),
                OutboxJob.status.in_([JobStatus.PENDING, JobStatus.RUNNING]),
            )
            .group_by(OutboxJob.provider)
        ).all()
    )
    breakers = {c.provider: c for c in circuits.states(session, workspace_id=workspace_id)}
    return {
        i.provider: _said(i.provider, i, int(waiting.get(i.provider, 0)), breakers.get(i.provider))
        for i in integrations
    }


def _said(
    provider: str,
    row: Integration | None,
    waiting: int,
    breaker: circuits.CircuitView | None,
) -> ProviderState:
    name = provider_name(provider)
    if row is None or row.status is IntegrationStatus.INACTIVE:
        message = f"{name} is not connected in this workspace."
        return ProviderState(provider, NOT_CONNECTED, message, 0)
    if row.status is IntegrationStatus.ERROR:
        said = f" ({row.last_error})" if row.last_error else ""
        message = (
            f"{name} refused this workspace's credentials{said}. Fix them under "
            f"Integrations → {name}; queued work waits until then."
        )
        return ProviderState(provider, REFUSED, message, waiting)
    breaker_open = breaker is not None and breaker.state != "closed"
    if row.last_error or breaker_open:
        said = (row.last_error or (breaker.last_error if breaker else None) or "").rstrip(".")
        jobs = f"{waiting} job{'s' if waiting != 1 else ''} queued" if waiting else "nothing queued"
        message = (
            f"{name} is unavailable; work is waiting ({jobs}) and runs when {name} answers"
            + (f". Last answer: {said}" if said else "")
            + "."
        )
        return ProviderState(provider, UNAVAILABLE, message, waiting)
    return ProviderState(provider, READY, "", waiting)
