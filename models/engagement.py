"""The engagement timeline: every open, click, payment and CRM event about a person, once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAtMixin, IdMixin


class EngagementEvent(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "engagement_events"
    __table_args__ = (
        # Once per provider event and workspace: one Stripe account connected to two
        # workspaces sends both the same event, and each keeps its own timeline.
        UniqueConstraint("workspace_id", "source", "source_event_id"),
        Index("ix_engagement_events_workspace_id_occurred_at", "workspace_id", "occurred_at"),
        Index("ix_engagement_events_subject", "workspace_id", "subject_type", "subject_id"),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(40))
    source_event_id: Mapped[str] = mapped_column(String(128))
    # lead | buyer | client, with that row's id.
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int]
    name: Mapped[str] = mapped_column(String(80))
    occurred_at: Mapped[dt.datetime]
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
