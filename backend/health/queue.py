"""The workspace's outbox now: jobs pending and running per kind, and how long the oldest
pending one has waited since it was queued (backoff included: that is how long its work has
not been done).

Tested in tests/health/test_queue.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import JobStatus, OutboxJob

_NEVER = dt.datetime.max.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class KindDepth:
    kind: str
    pending: int
    running: int
    oldest_pending_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class QueueNow:
    kinds: list[KindDepth]

    @property
    def oldest(self) -> KindDepth | None:
        waiting = [k for k in self.kinds if k.oldest_pending_at is not None]
        if not waiting:
            return None
        return min(waiting, key=lambda k: k.oldest_pending_at or _NEVER)

    @property
    def pending(self) -> int:
        return sum(k.pending for k in self.kinds)


def queue_now(session: Session, *, workspace_id: int) -> QueueNow:
    rows = session.execute(
        select(OutboxJob.kind, OutboxJob.status, func.count(), func.min(OutboxJob.created_at))
        .where(
            OutboxJob.workspace_id == workspace_id,
            OutboxJob.status.in_([JobStatus.PENDING, JobStatus.RUNNING]),
        )
        .group_by(OutboxJob.kind, OutboxJob.status)
    ).all()
    pending: dict[str, tuple[int, dt.datetime | None]] = {}
    running: dict[str, int] = {}
    for kind, status, count, first in rows:
        if status == JobStatus.PENDING:
            pending[kind] = (int(count), first)
        else:
            running[kind] = int(count)
    kinds = []
    for kind in sorted(set(pending) | set(running)):
        waiting, since = pending.get(kind, (0, None))
        kinds.append(KindDepth(kind, waiting, running.get(kind, 0), since))
    kinds.sort(key=lambda k: (-(k.pending + k.running), k.kind))
    return QueueNow(kinds)
