"""Whether the scheduler is alive: its heartbeat job writes here, the console reads the age.

Tested in tests/health/test_dashboard.py."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import SchedulerHeartbeat, utcnow
from models.base import UTCDateTime


def beat(session: Session, *, instance: str, now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    row = session.get(SchedulerHeartbeat, instance)
    if row is None:
        session.add(SchedulerHeartbeat(instance=instance, started_at=now, last_tick_at=now))
    else:
        row.last_tick_at = now


def last_tick(session: Session) -> dt.datetime | None:
    """The newest tick of any scheduler process: one alive is enough for the work to go on."""
    return session.scalar(select(func.max(SchedulerHeartbeat.last_tick_at, type_=UTCDateTime())))


def age_seconds(last: dt.datetime | None, now: dt.datetime | None = None) -> int | None:
    if last is None:
        return None
    return max(0, int(((now or utcnow()) - last).total_seconds()))
