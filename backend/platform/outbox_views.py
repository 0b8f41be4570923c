"""The Jobs page's reading of the outbox: the queue's depth by kind and status, and the running,
dead and waiting jobs of a workspace, as plain values.

Tested through the sidecar's /metrics (tests/api/webhooks/test_intake.py) and the Jobs page
(tests/e2e/test_jobs.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from backend.platform import outbox
from models import JobStatus, OutboxJob

S = TypeVar("S", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True, slots=True)
class JobFilter:
    """The Jobs page filtered to one provider's jobs (and one kind), as the Health page's links
    open it; empty: every job."""

    provider: str = ""
    kind: str = ""

    def __bool__(self) -> bool:
        return bool(self.provider or self.kind)

    def apply(self, stmt: S) -> S:
        filtered: Any = stmt
        if self.provider:
            filtered = filtered.where(OutboxJob.provider == self.provider)
        if self.kind:
            filtered = filtered.where(OutboxJob.kind == self.kind)
        return cast(S, filtered)


EVERY_JOB = JobFilter()


@dataclass(frozen=True, slots=True)
class QueueDepth:
    kind: str
    status: JobStatus
    count: int


def queue_depth(
    session: Session, *, workspace_id: int | None, only: JobFilter = EVERY_JOB
) -> list[QueueDepth]:
    stmt = only.apply(
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


def running_jobs(
    session: Session, *, workspace_id: int, limit: int = 50, only: JobFilter = EVERY_JOB
) -> list[JobView]:
    return _views(
        session.scalars(
            only.apply(select(OutboxJob))
            .where(OutboxJob.workspace_id == workspace_id, OutboxJob.status == JobStatus.RUNNING)
            .order_by(OutboxJob.lease_until)
            .limit(limit)
        ).all()
    )


def dead_jobs(
    session: Session, *, workspace_id: int, limit: int = 100, only: JobFilter = EVERY_JOB
) -> list[JobView]:
    return _views(
        session.scalars(
            only.apply(select(OutboxJob))
            .where(OutboxJob.workspace_id == workspace_id, OutboxJob.status == JobStatus.DEAD)
            .order_by(OutboxJob.finished_at.desc())
            .limit(limit)
        ).all()
    )


def waiting_jobs(
    session: Session, *, workspace_id: int, limit: int = 50, only: JobFilter = EVERY_JOB
) -> list[JobView]:
    """Pending jobs that already failed at least once: what an outage is holding back. Filtered
    to a provider, every pending job of it: behind an open breaker most were never tried, and
    they are what the operator came from the Health page to see."""
    stmt = only.apply(select(OutboxJob)).where(
        OutboxJob.workspace_id == workspace_id, OutboxJob.status == JobStatus.PENDING
    )
    if not only:
        stmt = stmt.where(outbox.FAILED_BEFORE)
    return _views(session.scalars(stmt.order_by(OutboxJob.run_after).limit(limit)).all())
