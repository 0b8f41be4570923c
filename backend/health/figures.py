"""Call figures from the per-minute rollups (``integration_call_minutes``): counts by outcome,
success rate and latency percentiles per provider over a window, and the same per time bucket
for the charts. Only rollups are read, never the raw logs: a week is at most one row per
(provider, operation, minute) of the workspace, summed by the database.

Short windows read the minute rollups; a window of days reads the hour ones (``hourly``), a
few thousand rows for a week however busy the workspace is.

Percentiles come from the histogram (``LATENCY_BUCKETS_MS``), interpolated within the bucket
the rank falls in, as Prometheus's ``histogram_quantile`` does: exact to a bucket's width.

Tested in tests/health/test_figures.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Integer, cast, func, select
from sqlalchemy.orm import Session

from models import BUCKET_COLUMNS, LATENCY_BUCKETS_MS, OUTCOME_COLUMNS, CallHour, CallMinute

_SUMMED = (*OUTCOME_COLUMNS, "latency_ms_sum", *BUCKET_COLUMNS)
# Each bucket's lower bound: the previous one's upper bound (0 for the first).
_LOWER = (0, *LATENCY_BUCKETS_MS)


def percentile(histogram: Sequence[int], q: float) -> float | None:
    """The latency (ms) below which a fraction ``q`` of the calls fall, from the counts per
    bucket (``BUCKET_COLUMNS`` order); None without calls. A rank in the open last bucket
    answers its lower bound (30 s): there is no upper one to interpolate to."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    below = 0
    for index, count in enumerate(histogram):
        if count and below + count >= rank:
            lower = float(_LOWER[index])
            if index >= len(LATENCY_BUCKETS_MS):
                return lower
            upper = float(LATENCY_BUCKETS_MS[index])
            return lower + (upper - lower) * max(0.0, rank - below) / count
        below += count
    return float(_LOWER[-1])  # unreachable: the ranks stop at the total


@dataclass(frozen=True, slots=True)
class Rollup:
    """Calls summed over some minutes: counts by outcome, the latency sum and histogram."""

    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOME_COLUMNS, 0))
    latency_ms_sum: int = 0
    histogram: tuple[int, ...] = (0,) * len(BUCKET_COLUMNS)

    @property
    def calls(self) -> int:
        return sum(self.outcomes.values())

    @property
    def failures(self) -> int:
        return self.calls - self.outcomes.get("ok", 0)

    @property
    def rate_limited(self) -> int:
        return self.outcomes.get("rate_limited", 0)

    @property
    def success_rate(self) -> float | None:
        """None without calls: no calls is not 100% success, it is nothing to say."""
        return None if self.calls == 0 else (self.calls - self.failures) / self.calls

    @property
    def failure_rate(self) -> float:
        return 0.0 if self.calls == 0 else self.failures / self.calls

    def percentile(self, q: float) -> float | None:
        return percentile(self.histogram, q)

    @classmethod
    def of(cls, values: Sequence[Any]) -> Rollup:
        """From the sums in ``_SUMMED`` order (None, as SUM of nothing gives, is 0)."""
        numbers = [int(v or 0) for v in values]
        n = len(OUTCOME_COLUMNS)
        return cls(
            outcomes=dict(zip(OUTCOME_COLUMNS, numbers[:n], strict=True)),
            latency_ms_sum=numbers[n],
            histogram=tuple(numbers[n + 1 :]),
        )


Rollups = type[CallMinute] | type[CallHour]


def _grain(hourly: bool) -> tuple[Rollups, Any]:
    """The rollup table and its time column."""
    return (CallHour, CallHour.hour) if hourly else (CallMinute, CallMinute.minute)


def _sums(table: Rollups) -> list[Any]:
    columns = table.__table__.c
    return [func.sum(columns[name]) for name in _SUMMED]


def by_provider(
    session: Session,
    *,
    workspace_id: int,
    since: dt.datetime,
    until: dt.datetime | None = None,
    providers: Sequence[str] | None = None,
    hourly: bool = False,
) -> dict[str, Rollup]:
    """Each provider's calls of the workspace from ``since`` (up to ``until``); ``hourly``
    reads whole hours: from the hour ``since`` falls in."""
    table, at = _grain(hourly)
    if hourly:
        since = since.replace(minute=0, second=0, microsecond=0)
    stmt = (
        select(table.provider, *_sums(table))
        .where(table.workspace_id == workspace_id, at >= since)
        .group_by(table.provider)
    )
    if until is not None:
        stmt = stmt.where(at < until)
    if providers is not None:
        stmt = stmt.where(table.provider.in_(list(providers)))
    return {row[0]: Rollup.of(row[1:]) for row in session.execute(stmt).all()}


def peak_minute(
    session: Session, *, workspace_id: int, since: dt.datetime, providers: Sequence[str]
) -> dict[str, int]:
    """Each provider's busiest minute since ``since`` (calls in it): against the pacing limit,
    how much room is left. Meant for a short window (the status window)."""
    total = sum(CallMinute.__table__.c[name] for name in OUTCOME_COLUMNS)
    per_minute = (
        select(CallMinute.provider, func.sum(total).label("calls"))
        .where(
            CallMinute.workspace_id == workspace_id,
            CallMinute.minute >= since,
            CallMinute.provider.in_(list(providers)),
        )
        .group_by(CallMinute.provider, CallMinute.minute)
        .subquery()
    )
    rows = session.execute(
        select(per_minute.c.provider, func.max(per_minute.c.calls)).group_by(per_minute.c.provider)
    ).all()
    return {p: int(n or 0) for p, n in rows}


# -- time series -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    at: dt.datetime  # the bucket's start
    rollup: Rollup


def epoch_seconds(session: Session, column: Any) -> ColumnElement[Any]:
    """Seconds since 1970 of a stored UTC timestamp, in the database's own dialect (SQLite
    keeps them as naive UTC text, PostgreSQL as timestamptz)."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", column)), Integer)
    return cast(func.strftime("%s", column), Integer)


def bucket_starts(start: dt.datetime, step: dt.timedelta, count: int) -> list[dt.datetime]:
    return [start + step * i for i in range(count)]


def bucket_index(
    session: Session, column: Any, start: dt.datetime, step: dt.timedelta
) -> ColumnElement[Any]:
    """Which bucket of ``step`` from ``start`` a timestamp column falls in (0, 1, …): grouped
    by the database, so that a week comes back as a hundred rows, not ten thousand minutes."""
    offset = epoch_seconds(session, column) - int(start.timestamp())
    # Integer division (SQLAlchemy's ``//``); the offsets are never negative (the query starts
    # at ``start``), so truncating is flooring.
    return offset // int(step.total_seconds())


def series(
    session: Session,
    *,
    workspace_id: int,
    provider: str,
    start: dt.datetime,
    step: dt.timedelta,
    count: int,
    hourly: bool = False,
) -> list[Point]:
    """The provider's calls per bucket of ``step`` from ``start``, ``count`` buckets, every
    bucket present (empty ones with no calls), oldest first. ``hourly`` (read the hour rollups)
    needs whole hours for ``start`` and ``step``."""
    table, at = _grain(hourly)
    bucket = bucket_index(session, at, start, step).label("bucket")
    rows = session.execute(
        select(bucket, *_sums(table))
        .where(
            table.workspace_id == workspace_id,
            table.provider == provider,
            at >= start,
            at < start + step * count,
        )
        .group_by(bucket)
    ).all()
    found = {int(row[0]): Rollup.of(row[1:]) for row in rows}
    return [
        Point(at, found.get(i, Rollup())) for i, at in enumerate(bucket_starts(start, step, count))
    ]
