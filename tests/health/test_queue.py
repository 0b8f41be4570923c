"""The outbox now, for the Health page: jobs pending and running per kind, and the oldest
pending job's age, of the workspace only."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from backend.health import queue
from models import JobStatus, OutboxJob, utcnow
from tests import factories


def _job(session: Session, workspace_id: int, kind: str, status: JobStatus, age_min: int) -> None:
    at = utcnow() - dt.timedelta(minutes=age_min)
    session.add(
        OutboxJob(
            workspace_id=workspace_id,
            kind=kind,
            provider="stripe",
            payload={},
            idempotency_key=f"{workspace_id}:{kind}:{status}:{age_min}",
            status=status,
            created_at=at,
            run_after=at,
        )
    )


def test_depth_by_kind_and_the_oldest_pending_job(session: Session) -> None:
    ws, other = factories.workspace(session), factories.workspace(session, slug="other")
    for age in (3, 40, 7):
        _job(session, ws.id, "stripe.create_invoice", JobStatus.PENDING, age)
    _job(session, ws.id, "stripe.create_invoice", JobStatus.RUNNING, 1)
    _job(session, ws.id, "alerts.email", JobStatus.PENDING, 12)
    _job(session, ws.id, "alerts.slack", JobStatus.DONE, 90)
    _job(session, ws.id, "alerts.slack", JobStatus.DEAD, 90)
    _job(session, other.id, "alerts.email", JobStatus.PENDING, 500)
    session.flush()

    now = queue.queue_now(session, workspace_id=ws.id)
    assert [(k.kind, k.pending, k.running) for k in now.kinds] == [
        ("stripe.create_invoice", 3, 1),
        ("alerts.email", 1, 0),
    ]
    oldest = now.oldest
    assert oldest is not None and oldest.kind == "stripe.create_invoice"
    assert oldest.oldest_pending_at is not None
    age = utcnow() - oldest.oldest_pending_at
    assert dt.timedelta(minutes=39) < age < dt.timedelta(minutes=41)
    assert now.pending == 4


def test_an_empty_queue_has_no_oldest_job(session: Session) -> None:
    ws = factories.workspace(session)
    now = queue.queue_now(session, workspace_id=ws.id)
    assert now.kinds == [] and now.oldest is None
