"""A provider's recent failures, grouped by error with counts: what a Health tile opens.

Read from the raw call log, the one place that keeps each error's words, but only over a short
window through the (workspace_id, at) index and at most ``LIMIT`` rows: a provider failing
thousands of times a minute still costs one bounded index range.

Tested in tests/health/test_failures.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.integrations.call_log import OK
from models import IntegrationLog, utcnow

WINDOW = dt.timedelta(hours=1)
LIMIT = 500


@dataclass(frozen=True, slots=True)
class FailureGroup:
    error: str
    outcome: str
    count: int
    first_at: dt.datetime
    last_at: dt.datetime


@dataclass(frozen=True, slots=True)
class RecentFailures:
    groups: list[FailureGroup]
    since: dt.datetime
    # True when the window held more failures than were read: the counts are of the latest.
    capped: bool

    @property
    def total(self) -> int:
        return sum(g.count for g in self.groups)


def recent_failures(
    session: Session,
    *,
    workspace_id: int,
    provider: str,
    window: dt.timedelta = WINDOW,
    limit: int = LIMIT,
    now: dt.datetime | None = None,
) -> RecentFailures:
    """The workspace's failed calls to ``provider`` in ``window``, grouped by error (and
    outcome), the most frequent first; at most ``limit`` of the latest are read."""
    since = (now or utcnow()) - window
    latest = (
        select(
            func.coalesce(IntegrationLog.error, "no error recorded").label("error"),
            IntegrationLog.outcome,
            IntegrationLog.at,
        )
        .where(
            IntegrationLog.workspace_id == workspace_id,
            IntegrationLog.at >= since,
            IntegrationLog.provider == provider,
            IntegrationLog.outcome != OK,
        )
        .order_by(IntegrationLog.at.desc())
        .limit(limit + 1)
        .subquery()
    )
    rows = session.execute(
        select(
            latest.c.error,
            latest.c.outcome,
            func.count(),
            func.min(latest.c.at),
            func.max(latest.c.at),
        ).group_by(latest.c.error, latest.c.outcome)
    ).all()
    groups = [FailureGroup(str(e), str(o), int(n), first, last) for e, o, n, first, last in rows]
    capped = sum(g.count for g in groups) > limit
    if capped:
        # The one row past the limit only told that there were more; drop it from the oldest.
        oldest = min(groups, key=lambda g: g.first_at)
        groups = [
            g
            if g is not oldest
            else FailureGroup(g.error, g.outcome, g.count - 1, g.first_at, g.last_at)
            for g in groups
        ]
        groups = [g for g in groups if g.count > 0]
    groups.sort(key=lambda g: (-g.count, -g.last_at.timestamp(), g.error))
    return RecentFailures(groups, since, capped)
