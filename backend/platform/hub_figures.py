"""What /metrics exports about provider calls, breakers and incidents, read from the database:
the call rollups (``integration_call_hours`` and ``integration_call_minutes``, never the raw
logs) for a bounded span of time, every connected account's breaker, and the incidents not
resolved.

The exporter (backend/api/call_metrics.py) asks for the day's hours once, then for recent
minutes only: it keeps the totals of older ones itself. Each read is a GROUP BY over a rollup's
time index, one over the breakers (one row per account) and one over the unresolved incidents.

Tested in tests/api/test_call_metrics.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import (
    BUCKET_COLUMNS,
    OUTCOME_COLUMNS,
    Alert,
    AlertState,
    CallHour,
    CallMinute,
    ProviderCircuit,
    Workspace,
)

# The workspace label of figures that are no workspace's (the platform's own Stripe account, an
# incident about the scheduler); no slug has parentheses.
PLATFORM = "(platform)"


@dataclass(frozen=True, slots=True)
class PeriodSums:
    """One minute's or hour's calls of one workspace to one provider, all operations
    together."""

    workspace: str
    provider: str
    start: dt.datetime
    outcomes: dict[str, int]
    buckets: dict[str, int]
    latency_ms_sum: int


@dataclass(frozen=True, slots=True)
class Breaker:
    workspace: str
    provider: str
    state: str  # closed | half_open | open


@dataclass(frozen=True, slots=True)
class OpenIncidents:
    workspace: str
    rule: str
    priority: str
    state: str
    count: int


def call_sums(
    session: Session,
    rollup: type[CallMinute | CallHour],
    *,
    since: dt.datetime,
    until: dt.datetime | None = None,
) -> list[PeriodSums]:
    """Each (workspace, provider, minute or hour) of ``rollup`` in [since, until), summed over
    its operations (by the rollup's time index)."""
    table = rollup.__table__
    start = table.c.minute if rollup is CallMinute else table.c.hour
    summed = [func.sum(table.c[name]) for name in (*OUTCOME_COLUMNS, *BUCKET_COLUMNS)]
    stmt = (
        select(
            Workspace.slug,
            table.c.provider,
            start,
            func.sum(table.c.latency_ms_sum),
            *summed,
        )
        .join(Workspace, Workspace.id == table.c.workspace_id)
        .where(start >= since)
        .group_by(Workspace.slug, table.c.provider, start)
    )
    if until is not None:
        stmt = stmt.where(start < until)
    rows = session.execute(stmt).all()
    outcomes = len(OUTCOME_COLUMNS)
    return [
        PeriodSums(
            workspace=slug,
            provider=provider,
            start=at,
            outcomes=dict(zip(OUTCOME_COLUMNS, map(int, counts[:outcomes]), strict=True)),
            buckets=dict(zip(BUCKET_COLUMNS, map(int, counts[outcomes:]), strict=True)),
            latency_ms_sum=int(latency or 0),
        )
        for slug, provider, at, latency, *counts in rows
    ]


def breakers(session: Session) -> list[Breaker]:
    """Every account's breaker (a workspace's at a provider, or the platform's own)."""
    rows = session.execute(
        select(Workspace.slug, ProviderCircuit.provider, ProviderCircuit.state)
        .outerjoin(Workspace, Workspace.id == ProviderCircuit.workspace_id)
        .order_by(ProviderCircuit.key)
    ).all()
    return [Breaker(slug or PLATFORM, provider, state) for slug, provider, state in rows]


def open_incidents(session: Session) -> list[OpenIncidents]:
    """Incidents not resolved, counted by workspace, rule, priority and state (an acknowledged
    or snoozed incident is still open: its condition has not cleared)."""
    rows = session.execute(
        select(Workspace.slug, Alert.type, Alert.priority, Alert.state, func.count())
        .outerjoin(Workspace, Workspace.id == Alert.workspace_id)
        .where(Alert.state != AlertState.RESOLVED)
        .group_by(Workspace.slug, Alert.type, Alert.priority, Alert.state)
    ).all()
    return [
        OpenIncidents(slug or PLATFORM, rule, str(priority), str(state), int(count))
        for slug, rule, priority, state, count in rows
    ]
