"""What operators watch: alerts, every integration call, and the audit trail of every change."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, utcnow
from models.enums import AlertPriority, AlertState, str_enum


class Alert(IdMixin, Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_workspace_id_state", "workspace_id", "state"),)

    # None for alerts about the platform itself (the scheduler stopped), not one business.
    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(40))
    priority: Mapped[AlertPriority] = mapped_column(
        str_enum(AlertPriority, "alert_priority"), default=AlertPriority.NORMAL
    )
    message: Mapped[str] = mapped_column(Text)
    entity_type: Mapped[str | None] = mapped_column(String(40))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[AlertState] = mapped_column(
        str_enum(AlertState, "alert_state"), default=AlertState.OPEN
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None]
    resolved_at: Mapped[dt.datetime | None]


class IntegrationLog(IdMixin, Base):
    __tablename__ = "integration_logs"
    __table_args__ = (
        Index("ix_integration_logs_provider_at", "provider", "at"),
        Index("ix_integration_logs_workspace_id_at", "workspace_id", "at"),
    )

    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    integration_id: Mapped[int | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL")
    )
    provider: Mapped[str] = mapped_column(String(40))
    operation: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16))
    latency_ms: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditLog(IdMixin, Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_workspace_id_at", "workspace_id", "at"),)

    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    # "operator:<id>" or a process name ("scheduler", "sidecar"): who made the change.
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(80))
    target: Mapped[str] = mapped_column(String(120))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
