"""The Jobs page's reading of the outbox: the queue's depth by kind and status, and the running,
dead and waiting jobs of a workspace, as plain values.

Tested through the sidecar's /metrics (tests/api/webhooks/test_intake.py) and the Jobs page
(tests/e2e/test_jobs.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import JobStatus, OutboxJob


@dataclass(frozen=True, slots=True)
class QueueDepth:
    kind: str
    status: JobStatus
    count: int


def queue_depth(session: Session, *, workspace_id: int | None) -> list[QueueDepth]:
    stmt = (
        select(OutboxJob.kind, OutboxJob.status, func.count())
        .group_by(OutboxJob.kind, OutboxJob.status)
        .order_by(OutboxJob.kind, OutboxJob.status)
    )
    if workspace_id is not None:
        stmt = stmt.where(OutboxJob.workspace_id == workspace_id)
    return [QueueDepth(kind, status, int(n)) for kind, status, n in session.execute(stmt).all()]


@dataclass(frozen=True, slots=True)
class JobView:
    id: int
    kind: str
    provider: str | None
    status: JobStatus
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_until: dt.datetime | None
    run_after: dt.datetime
    last_error: str | None
    finished_at: dt.datetime | None


def _views(rows: Sequence[OutboxJob]) -> list[JobView]:
    return [
        JobView(
            j.id,
            j.kind,
            j.provider,
            j.status,
            j.attempts,
            j.max_attempts,
            j.lease_owner,
            j.lease_until,
            j.run_after,
            j.last_error,
            j.finished_at,
        )
        for j in rows
    ]


def running_jobs(session: Session, *, workspace_id: int, limit: int = 50) -> list[JobView]:
    return _views(
        session.scalars(
            select(OutboxJob)
            .where(OutboxJob.workspace_id == workspace_id, OutboxJob.status == JobStatus.RUNNING)
            .order_by(OutboxJob.lease_until)
            .limit(limit)
        ).all()
    )


def dead_jobs(session: Session, *, workspace_id: int, limit: int = 100) -> list[JobView]:
    return _views(
        session.scalars(
            select(OutboxJob)
            .where(OutboxJob.workspace_id == workspace_id, OutboxJob.status == JobStatus.DEAD)
            .order_by(OutboxJob.finished_at.desc())
            .limit(limit)
        ).all()
    )


def waiting_jobs(session: Session, *, workspace_id: int, limit: int = 50) -> list[JobView]:
    """Pending jobs that already failed at least once: what an outage is holding back."""
    return _views(
        session.scalars(
            select(OutboxJob)
            .where(
                OutboxJob.workspace_id == workspace_id,
                OutboxJob.status == JobStatus.PENDING,
                OutboxJob.attempts > 0,
            )
            .order_by(OutboxJob.run_after)
            .limit(limit)
        ).all()
    )
