"""The transactional outbox (reading side for now: queue depth for the Jobs page)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import JobStatus, OutboxJob


@dataclass(frozen=True, slots=True)
class QueueDepth:
    kind: str
    status: JobStatus
    count: int


def queue_depth(session: Session, *, workspace_id: int) -> list[QueueDepth]:
    rows = session.execute(
        select(OutboxJob.kind, OutboxJob.status, func.count())
        .where(OutboxJob.workspace_id == workspace_id)
        .group_by(OutboxJob.kind, OutboxJob.status)
        .order_by(OutboxJob.kind, OutboxJob.status)
    ).all()
    return [QueueDepth(kind, status, int(n)) for kind, status, n in rows]
