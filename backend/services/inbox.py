"""The webhook inbox: verified provider events are stored with their processing job in one
transaction (``record``); the ``inbox.process`` job later applies each one through the handler
registered for its (provider, event type).

Handlers are idempotent and order-independent: a provider sends the same event twice, out of
order, sometimes days late, and the final state must be the same as sending each once, in order.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from backend.services import outbox
from models import InboundEvent, InboundStatus, IntegrationLog, utcnow

InboxHandler = Callable[[Session, InboundEvent], None]
_HANDLERS: dict[tuple[str, str], InboxHandler] = {}
PROCESS_KIND = "inbox.process"


def handles(provider: str, *event_types: str) -> Callable[[InboxHandler], InboxHandler]:
    """Register a handler for a provider's event types (one table for every provider)."""

    def register(handler: InboxHandler) -> InboxHandler:
        for event_type in event_types:
            _HANDLERS[(provider, event_type)] = handler
        return handler

    return register


def handler_for(provider: str, event_type: str) -> InboxHandler | None:
    return _HANDLERS.get((provider, event_type))


def record(
    session: Session,
    *,
    provider: str,
    external_id: str,
    event_type: str,
    workspace_id: int | None,
    payload: dict[str, Any],
    received_at: dt.datetime | None = None,
) -> bool:
    """Store a verified event and its processing job, in the caller's transaction.

    Returns False, changing nothing, when this provider's event id is already stored.
    """
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    inbound_id = session.execute(
        insert(InboundEvent)
        .values(
            provider=provider,
            external_id=external_id,
            event_type=event_type,
            workspace_id=workspace_id,
            payload=payload,
            status=InboundStatus.PENDING,
            received_at=received_at or utcnow(),
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["provider", "external_id"])
        .returning(InboundEvent.id)
    ).scalar()
    if inbound_id is None:
        return False
    outbox.enqueue(
        session,
        kind=PROCESS_KIND,
        payload={"inbound_id": inbound_id},
        idempotency_key=f"inbox:{provider}:{external_id}",
        workspace_id=workspace_id,
    )
    return True


@outbox.job_kind(PROCESS_KIND, max_attempts=8, backoff=(5, 30, 120, 600, 1800, 3600, 7200))
def process(session: Session, job: outbox.JobContext) -> None:
    """Apply one stored event. Runs in the job's transaction: the effect and the 'handled'
    mark commit together, so a crash between them cannot apply an event twice."""
    event = session.get(InboundEvent, job.payload["inbound_id"])
    if event is None or event.status in (InboundStatus.HANDLED, InboundStatus.IGNORED):
        return
    event.attempts += 1
    handler = handler_for(event.provider, event.event_type)
    started = time.perf_counter()
    if handler is None:
        event.status = InboundStatus.IGNORED
        event.handled_at = utcnow()
        return
    try:
        handler(session, event)
    except Exception as exc:
        # The job's transaction rolls back; the runner records the error on the job.
        raise RuntimeError(f"{event.provider} {event.event_type} handler failed: {exc}") from exc
    event.status = InboundStatus.HANDLED
    event.handled_at = utcnow()
    event.last_error = None
    session.add(
        IntegrationLog(
            workspace_id=event.workspace_id,
            provider=event.provider,
            operation=f"webhook:{event.event_type}",
            status="ok",
            latency_ms=round((time.perf_counter() - started) * 1000),
            at=utcnow(),
        )
    )


def lag_seconds(session: Session, *, now: dt.datetime | None = None) -> float:
    """Age of the oldest event not yet handled: how far processing is behind intake."""
    oldest = session.scalar(
        select(func.min(InboundEvent.received_at)).where(
            InboundEvent.status == InboundStatus.PENDING
        )
    )
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    return max(0.0, ((now or utcnow()) - oldest).total_seconds())


def recent(session: Session, *, workspace_id: int, limit: int = 50) -> list[InboundEvent]:
    return list(
        session.scalars(
            select(InboundEvent)
            .where(InboundEvent.workspace_id == workspace_id)
            .order_by(InboundEvent.received_at.desc(), InboundEvent.id.desc())
            .limit(limit)
        )
    )
