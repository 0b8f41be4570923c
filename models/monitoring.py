"""What operators watch: alerts, every integration call, and the audit trail of every change."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, utcnow
from models.enums import AlertPriority, AlertState, str_enum

# The incident of a (workspace, rule, entity) while it is not resolved: one row, however often
# it recurs. Enforced by the database so that two raisers at once cannot make two.
_UNRESOLVED = text("state != 'resolved'")
_PLATFORM_UNRESOLVED = text("workspace_id IS NULL AND state != 'resolved'")


class Alert(IdMixin, Base):
    """An incident: grouped by (workspace, ``type`` (the rule), ``entity_key``), with when it was
    first and last seen and how often. ``priority`` is its severity."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_workspace_id_state", "workspace_id", "state"),
        Index(
            "uq_alerts_open_incident",
            "workspace_id",
            "type",
            "entity_key",
            unique=True,
            sqlite_where=_UNRESOLVED,
            postgresql_where=_UNRESOLVED,
        ),
        # NULLs are distinct in a unique index: the platform's own incidents need their own.
        Index(
            "uq_alerts_open_platform_incident",
            "type",
            "entity_key",
            unique=True,
            sqlite_where=_PLATFORM_UNRESOLVED,
            postgresql_where=_PLATFORM_UNRESOLVED,
        ),
    )

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
    # "<entity_type>:<entity_id>" ("provider:stripe"), "" for none: the grouping key.
    entity_key: Mapped[str] = mapped_column(String(120), default="")
    first_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    count: Mapped[int] = mapped_column(default=1)
    snoozed_until: Mapped[dt.datetime | None]
    ignored_for_ever: Mapped[bool] = mapped_column(default=False)
    # It came back after it was resolved.
    regressed: Mapped[bool] = mapped_column(default=False)
    # Since when its condition has not been seen (auto-resolve after five minutes of it).
    clear_since: Mapped[dt.datetime | None]
    # Deliveries so far (the next one's number is this plus one), when, and at which severity.
    notified_count: Mapped[int] = mapped_column(default=0)
    last_notified_at: Mapped[dt.datetime | None]
    notified_priority: Mapped[AlertPriority | None] = mapped_column(
        str_enum(AlertPriority, "alert_notified_priority")
    )
    # The platform's own incidents (no workspace, so no outbox channel: the scheduler that
    # drains it may be what stopped) are posted by the sidecar itself; the notices it has
    # taken so far (backend/health/platform_notices.py).
    posted_count: Mapped[int] = mapped_column(default=0)


class AlertEvent(IdMixin, Base):
    """An incident's history: raised, recurred, escalated, acknowledged, snoozed, notified …"""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_alert_id_at", "alert_id", "at"),)

    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    what: Mapped[str] = mapped_column(String(40))
    # "operator:<id>" or a process ("scheduler", "sidecar"), as in the audit log.
    who: Mapped[str] = mapped_column(String(80))
    detail: Mapped[str] = mapped_column(Text, default="")


class IntegrationLog(IdMixin, Base):
    """One request to a provider (backend/integrations/call_log.py): who it was for, what it
    asked, how it ended and how long it took. Never a body, a secret or a person's data."""

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
    # ok | rejected | rate_limited | unavailable | timeout (call_log.OUTCOMES)
    outcome: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None]
    latency_ms: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    # The outbox job that made the call; no foreign key: jobs are purged before their logs.
    job_id: Mapped[int | None]
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# Upper bounds (ms) of the latency histogram's buckets, the last one open: fine enough for a
# p50/p95/p99 within a bucket's width, coarse enough to be a dozen integer columns.
LATENCY_BUCKETS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
BUCKET_COLUMNS = (*(f"le_{b}" for b in LATENCY_BUCKETS_MS), "le_inf")
OUTCOME_COLUMNS = ("ok", "rejected", "rate_limited", "unavailable", "timeout")


class _CallCounts:
    """Counts by outcome and a latency histogram: what a minute's and an hour's rollup hold."""

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(40))
    operation: Mapped[str] = mapped_column(String(80))
    ok: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    rate_limited: Mapped[int] = mapped_column(default=0)
    unavailable: Mapped[int] = mapped_column(default=0)
    timeout: Mapped[int] = mapped_column(default=0)
    latency_ms_sum: Mapped[int] = mapped_column(default=0)
    le_10: Mapped[int] = mapped_column(default=0)
    le_25: Mapped[int] = mapped_column(default=0)
    le_50: Mapped[int] = mapped_column(default=0)
    le_100: Mapped[int] = mapped_column(default=0)
    le_250: Mapped[int] = mapped_column(default=0)
    le_500: Mapped[int] = mapped_column(default=0)
    le_1000: Mapped[int] = mapped_column(default=0)
    le_2500: Mapped[int] = mapped_column(default=0)
    le_5000: Mapped[int] = mapped_column(default=0)
    le_10000: Mapped[int] = mapped_column(default=0)
    le_30000: Mapped[int] = mapped_column(default=0)
    le_inf: Mapped[int] = mapped_column(default=0)


class CallMinute(_CallCounts, IdMixin, Base):
    """Calls of one minute per (workspace, provider, operation): counts by outcome and a
    latency histogram. Written with the logs they sum (backend/platform/call_log_writer.py);
    the Health page, the alert rules and /metrics read these, never the raw logs. Short
    windows (15 minutes, the alert rules) read minutes; a day or a week reads ``CallHour``."""

    __tablename__ = "integration_call_minutes"
    __table_args__ = (
        Index(
            "uq_integration_call_minutes_key",
            "workspace_id",
            "provider",
            "operation",
            "minute",
            unique=True,
        ),
        Index("ix_integration_call_minutes_minute", "minute"),
        # A window of one workspace (the page, the rules): a range, not every operation's rows.
        Index("ix_integration_call_minutes_workspace_id_minute", "workspace_id", "minute"),
    )

    minute: Mapped[dt.datetime]


class CallHour(_CallCounts, IdMixin, Base):
    """The same per hour: a week is 168 rows per (provider, operation), not 10,080, so a 7-day
    view stays a few thousand rows however busy the workspace is."""

    __tablename__ = "integration_call_hours"
    __table_args__ = (
        Index(
            "uq_integration_call_hours_key",
            "workspace_id",
            "provider",
            "operation",
            "hour",
            unique=True,
        ),
        Index("ix_integration_call_hours_hour", "hour"),
        Index("ix_integration_call_hours_workspace_id_hour", "workspace_id", "hour"),
    )

    hour: Mapped[dt.datetime]


class ProviderCallLatest(Base):
    """A workspace's last success and last failure with a provider: the Health tile's "last
    success" and "last error" without searching the logs backwards."""

    __tablename__ = "provider_call_latest"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_ok_at: Mapped[dt.datetime | None]
    last_error_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_operation: Mapped[str | None] = mapped_column(String(80))


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
