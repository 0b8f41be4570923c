"""Everything the Health page shows but its alerts, read in one go for one window: the tiles,
one provider's calls and latency over time, webhook intake and the outbox now.

The windows and how finely each is cut: a chart of a hundred points or fewer, whatever the
window (15 one-minute points, 96 quarter-hours, 84 two-hour buckets).

Tested in tests/health/test_page.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from backend.health import figures, intake, queue, tiles
from models import utcnow


@dataclass(frozen=True, slots=True)
class Window:
    key: str
    label: str
    span: dt.timedelta
    step: dt.timedelta
    # Read the hour rollups (the steps are whole hours): a week in a few thousand rows.
    hourly: bool = False

    @property
    def count(self) -> int:
        return int(self.span / self.step)

    def start(self, now: dt.datetime) -> dt.datetime:
        """The first bucket's start: buckets end at the next step boundary after ``now`` (so
        that the current, partial bucket is the last one) and line up with the clock."""
        step = int(self.step.total_seconds())
        end = (int(now.timestamp()) // step + 1) * step
        return dt.datetime.fromtimestamp(end, dt.UTC) - self.span


WINDOWS = {
    w.key: w
    for w in (
        Window("15m", "15 minutes", dt.timedelta(minutes=15), dt.timedelta(minutes=1)),
        Window("24h", "24 hours", dt.timedelta(hours=24), dt.timedelta(minutes=15)),
        Window("7d", "7 days", dt.timedelta(days=7), dt.timedelta(hours=2), hourly=True),
    )
}
DEFAULT_WINDOW = "24h"


def window_of(key: str) -> Window:
    """A window from the page; anything unknown is the default one."""
    return WINDOWS.get(key, WINDOWS[DEFAULT_WINDOW])


@dataclass(frozen=True, slots=True)
class HealthFigures:
    window: Window
    start: dt.datetime
    tiles: list[tiles.ProviderTile]
    # The provider the charts are of (the chosen one if it has a tile, else the most troubled).
    provider: str | None
    calls: list[figures.Point]
    intake: dict[str, list[intake.IntakePoint]]
    queue: queue.QueueNow
    now: dt.datetime


def read(
    session: Session,
    *,
    workspace_id: int,
    window: str = DEFAULT_WINDOW,
    provider: str | None = None,
    now: dt.datetime | None = None,
) -> HealthFigures:
    now = now or utcnow()
    chosen = window_of(window)
    start = chosen.start(now)
    found = tiles.provider_tiles(session, workspace_id=workspace_id, window=chosen.span, now=now)
    slugs = [t.provider for t in found]
    charted = provider if provider in slugs else (slugs[0] if slugs else None)
    calls = (
        figures.series(
            session,
            workspace_id=workspace_id,
            provider=charted,
            start=start,
            step=chosen.step,
            count=chosen.count,
            hourly=chosen.hourly,
        )
        if charted is not None
        else []
    )
    return HealthFigures(
        window=chosen,
        start=start,
        tiles=found,
        provider=charted,
        calls=calls,
        intake=intake.webhook_intake(
            session, workspace_id=workspace_id, start=start, step=chosen.step, count=chosen.count
        ),
        queue=queue.queue_now(session, workspace_id=workspace_id),
        now=now,
    )
