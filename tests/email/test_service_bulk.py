"""Queueing many messages at once (``service.queue_emails``): the same rows and jobs as one
``queue_email`` call per message (addresses normalised, suppressed addresses skipped with
their reason and no job, a dedupe key used before, or twice in the list, giving the message
already recorded), and the ids in the order asked."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.email import service
from backend.email.service import Recipient
from models import EmailMessage, EmailStatus, OutboxJob
from tests import factories

CONTEXT: dict[str, Any] = {"amount": "$450.00", "payment_url": "https://pay.example/i/1"}
COLUMNS = (
    "purpose",
    "template",
    "to_email",
    "to_name",
    "subject_type",
    "subject_id",
    "context",
    "dedupe_key",
    "status",
    "skip_reason",
)


def _workspace(engine: Engine, slug: str) -> int:
    with Session(engine) as session:
        ws = factories.workspace(session, slug=slug).id
        session.commit()
        return ws


def _suppress(engine: Engine, ws: int) -> None:
    with Session(engine) as session:
        service.suppress(
            session, workspace_id=ws, email="gone@example.com", groups=["all"], reason="bounce"
        )
        service.suppress(
            session,
            workspace_id=ws,
            email="quiet@example.com",
            groups=["reminders"],
            reason="unsubscribe",
        )
        session.commit()


RECIPIENTS = [
    Recipient("  Jane.Doe@Example.COM ", "Jane", "client", 1, CONTEXT, "k:1"),
    Recipient("gone@example.com", "Gone", "client", 2, CONTEXT, "k:2"),
    Recipient("quiet@example.com", None, "lead", 3, CONTEXT, "k:3"),
    Recipient("again@example.com", "Again", "client", 4, CONTEXT, "k:1"),  # k:1 again
    Recipient("nokey@example.com", "  No Key  ", None, None, CONTEXT, None),
    Recipient("nokey@example.com", "No Key", None, None, CONTEXT, None),
]


def _rows(engine: Engine, ws: int) -> tuple[list[tuple[Any, ...]], list[str]]:
    with Session(engine) as session:
        messages = session.scalars(
            select(EmailMessage).where(EmailMessage.workspace_id == ws).order_by(EmailMessage.id)
        ).all()
        rows = [tuple(getattr(m, c) for c in COLUMNS) for m in messages]
        first = messages[0].id if messages else 0
        jobs = session.scalars(
            select(OutboxJob.idempotency_key)
            .where(OutboxJob.workspace_id == ws)
            .order_by(OutboxJob.id)
        ).all()
        # Keys relative to the workspace's first message: the two workspaces compare equal.
        keys = [f"email.send:+{int(k.rsplit(':', 1)[1]) - first}" for k in jobs]
        return rows, keys


def test_bulk_queueing_writes_what_single_calls_write(engine: Engine) -> None:
    single_ws = _workspace(engine, "single")
    bulk_ws = _workspace(engine, "bulk")
    _suppress(engine, single_ws)
    _suppress(engine, bulk_ws)
    with Session(engine) as session:
        single_ids = [
            service.queue_email(
                session,
                workspace_id=single_ws,
                purpose="payment_reminder",
                to_email=r.to_email,
                to_name=r.to_name,
                subject_type=r.subject_type,
                subject_id=r.subject_id,
                context=r.context,
                dedupe_key=r.dedupe_key,
            ).id
            for r in RECIPIENTS
        ]
        bulk_ids = service.queue_emails(
            session, workspace_id=bulk_ws, purpose="payment_reminder", recipients=RECIPIENTS
        )
        session.commit()
    single_rows, single_jobs = _rows(engine, single_ws)
    bulk_rows, bulk_jobs = _rows(engine, bulk_ws)
    assert bulk_rows == single_rows
    assert bulk_jobs == single_jobs
    # The same shape of ids: the repeated key gives the first message's id.
    assert [i - bulk_ids[0] for i in bulk_ids] == [i - single_ids[0] for i in single_ids]
    assert bulk_ids[3] == bulk_ids[0]
    statuses = [row[COLUMNS.index("status")] for row in bulk_rows]
    assert statuses == [
        EmailStatus.QUEUED,
        EmailStatus.SKIPPED,
        EmailStatus.SKIPPED,
        EmailStatus.QUEUED,
        EmailStatus.QUEUED,
    ]
    assert len(bulk_jobs) == 3


def test_bulk_queueing_twice_queues_nothing_new(engine: Engine) -> None:
    ws = _workspace(engine, "bulk")
    keyed = [Recipient(f"p{n}@example.com", dedupe_key=f"k:{n}") for n in range(2500)]
    with Session(engine) as session:
        first = service.queue_emails(
            session, workspace_id=ws, purpose="payment_request", recipients=keyed
        )
        session.commit()
    with Session(engine) as session:
        again = service.queue_emails(
            session, workspace_id=ws, purpose="payment_request", recipients=keyed[::-1]
        )
        session.commit()
    assert again == first[::-1]
    rows, jobs = _rows(engine, ws)
    assert len(rows) == 2500
    assert len(jobs) == 2500
    assert [r[COLUMNS.index("to_email")] for r in rows] == [r.to_email for r in keyed]
