"""What /metrics exports about provider calls, breakers and incidents, read from the database:
the per-minute call rollups (``integration_call_minutes``, never the raw logs) for a bounded
span of recent minutes, every connected account's breaker, and the incidents not resolved.

The exporter (backend/api/call_metrics.py) asks for recent minutes only: it keeps the totals of
older ones itself. Each read is one GROUP BY over the rollups' minute index, one over the
breakers (one row per account) and one over the unresolved incidents.

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
    CallMinute,
    ProviderCircuit,
    Workspace,
)

# The workspace label of figures that are no workspace's (the platform's own Stripe account, an
# incident about the scheduler); no slug has parentheses.
PLATFORM = "(platform)"


@dataclass(frozen=True, slots=True)
class MinuteSums:
    """One minute of one workspace's calls to one provider, all operations together."""

    workspace: str
    provider: str
    minute: dt.datetime
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


def call_minutes(session: Session, *, since: dt.datetime) -> list[MinuteSums]:
    """Each (workspace, provider, minute) from ``since`` on, summed over its operations."""
    summed = [
        func.sum(CallMinute.__table__.c[name]) for name in (*OUTCOME_COLUMNS, *BUCKET_COLUMNS)
    ]
    rows = session.execute(
        select(
            Workspace.slug,
            CallMinute.provider,
            CallMinute.minute,
            func.sum(CallMinute.latency_ms_sum),
            *summed,
        )
        .join(Workspace, Workspace.id == CallMinute.workspace_id)
        .where(CallMinute.minute >= since)
        .group_by(Workspace.slug, CallMinute.provider, CallMinute.minute)
    ).all()
    outcomes = len(OUTCOME_COLUMNS)
    return [
        MinuteSums(
            workspace=slug,
            provider=provider,
            minute=minute,
            outcomes=dict(zip(OUTCOME_COLUMNS, map(int, counts[:outcomes]), strict=True)),
            buckets=dict(zip(BUCKET_COLUMNS, map(int, counts[outcomes:]), strict=True)),
            latency_ms_sum=int(latency or 0),
        )
        for slug, provider, minute, latency, *counts in rows
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
