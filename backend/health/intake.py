"""Webhook intake per provider over time: how many arrived per bucket, and the lag from
received to handled (mean and worst), from ``inbound_events``.

An index-range query, not a rollup: ``ix_inbound_events_workspace_id_received_at`` gives the
workspace's events of the window, grouped into buckets by the database. A rollup would have to
be written by the sidecar's webhook intake, the hottest insert there is, as an upsert on one
row per workspace and minute that every concurrent event would queue on; one more index entry
costs that path far less. Events are kept 30 days (retention), so a week's range is bounded.

Tested in tests/health/test_intake.py.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Float, case, cast, func, select
from sqlalchemy.orm import Session

from backend.health.figures import bucket_index, bucket_starts, epoch_seconds
from models import InboundEvent


@dataclass(frozen=True, slots=True)
class IntakePoint:
    at: dt.datetime
    received: int
    handled: int
    lag_mean_s: float | None
    lag_max_s: float | None


def webhook_intake(
    session: Session,
    *,
    workspace_id: int,
    start: dt.datetime,
    step: dt.timedelta,
    count: int,
) -> dict[str, list[IntakePoint]]:
    """Per provider, each bucket's events received and handled, and their lag, oldest first;
    every bucket present."""
    bucket = bucket_index(session, InboundEvent.received_at, start, step).label("bucket")
    lag = cast(
        epoch_seconds(session, InboundEvent.handled_at)
        - epoch_seconds(session, InboundEvent.received_at),
        Float,
    )
    handled = InboundEvent.handled_at.is_not(None)
    rows = session.execute(
        select(
            InboundEvent.provider,
            bucket,
            func.count(),
            func.sum(case((handled, 1), else_=0)),
            func.avg(case((handled, lag), else_=None)),
            func.max(case((handled, lag), else_=None)),
        )
        .where(
            InboundEvent.workspace_id == workspace_id,
            InboundEvent.received_at >= start,
            InboundEvent.received_at < start + step * count,
        )
        .group_by(InboundEvent.provider, bucket)
    ).all()
    found: dict[str, dict[int, tuple[int, int, float | None, float | None]]] = defaultdict(dict)
    for provider, index, received, done, mean, worst in rows:
        found[str(provider)][int(index)] = (
            int(received),
            int(done or 0),
            None if mean is None else max(0.0, float(mean)),
            None if worst is None else max(0.0, float(worst)),
        )
    starts = bucket_starts(start, step, count)
    return {
        provider: [
            IntakePoint(at, *buckets.get(i, (0, 0, None, None))) for i, at in enumerate(starts)
        ]
        for provider, buckets in sorted(found.items())
    }
