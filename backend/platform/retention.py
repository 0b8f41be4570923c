"""Retention: finished jobs, handled webhook bodies, old call logs and old call rollups (of
minutes and of hours) are purged nightly (the alert rules are in health/rules.py, the
orphaned-contract sweep in pipeline/orphaned_contracts.py).

Tested in tests/platform/test_retention.py."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.orm import Session

from models import (
    CallHour,
    CallMinute,
    InboundEvent,
    InboundStatus,
    IntegrationLog,
    JobStatus,
    OutboxJob,
    utcnow,
)

# The call rollups behind the Health page's charts, the alert rules and /metrics. Minutes are
# kept as long as the raw logs (90 days: a few dozen rows per workspace and minute at most);
# hours, 60 times fewer and holding no personal data, for 400 days, so that a year ago's
# figures can be compared with this month's after the raw rows are gone.
KEEP_CALL_MINUTES = dt.timedelta(days=90)
KEEP_CALL_HOURS = dt.timedelta(days=400)


def purge_old_rows(
    session: Session,
    *,
    now: dt.datetime | None = None,
    keep_jobs: dt.timedelta = dt.timedelta(days=14),
    keep_events: dt.timedelta = dt.timedelta(days=30),
    keep_logs: dt.timedelta = dt.timedelta(days=90),
    keep_call_minutes: dt.timedelta = KEEP_CALL_MINUTES,
    keep_call_hours: dt.timedelta = KEEP_CALL_HOURS,
) -> dict[str, int]:
    """Retention: finished jobs, handled webhook bodies (they hold personal data), old call
    logs and old call rollups go; dead jobs and unhandled events stay until someone deals with
    them. Rollups and raw logs have retentions of their own: the rollups are what every figure
    is read from, the raw rows only what an operator digs into."""
    now = now or utcnow()
    counts = {}
    for name, stmt in (
        (
            "outbox_jobs",
            delete(OutboxJob).where(
                OutboxJob.status == JobStatus.DONE, OutboxJob.finished_at < now - keep_jobs
            ),
        ),
        (
            "inbound_events",
            delete(InboundEvent).where(
                InboundEvent.status.in_([InboundStatus.HANDLED, InboundStatus.IGNORED]),
                InboundEvent.received_at < now - keep_events,
            ),
        ),
        ("integration_logs", delete(IntegrationLog).where(IntegrationLog.at < now - keep_logs)),
        (
            "integration_call_minutes",
            # By the rollups' time indexes (ix_integration_call_minutes_minute, …_hours_hour).
            delete(CallMinute).where(CallMinute.minute < now - keep_call_minutes),
        ),
        (
            "integration_call_hours",
            delete(CallHour).where(CallHour.hour < now - keep_call_hours),
        ),
    ):
        result = session.execute(stmt.execution_options(synchronize_session=False))
        counts[name] = int(getattr(result, "rowcount", 0) or 0)
    return counts
