"""The platform's own bookkeeping: which scheduler processes are alive."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class SchedulerHeartbeat(Base):
    """One row per scheduler process, touched by its heartbeat job every few seconds."""

    __tablename__ = "scheduler_heartbeats"

    instance: Mapped[str] = mapped_column(String(120), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_tick_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
