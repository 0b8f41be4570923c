"""Retention: finished jobs, handled webhook bodies and old call logs are purged nightly (the
alert rules are in health/rules.py, the orphaned-contract sweep in
pipeline/orphaned_contracts.py)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.orm import Session

from models import InboundEvent, InboundStatus, IntegrationLog, JobStatus, OutboxJob, utcnow


def purge_old_rows(
    session: Session,
    *,
    now: dt.datetime | None = None,
    keep_jobs: dt.timedelta = dt.timedelta(days=14),
    keep_events: dt.timedelta = dt.timedelta(days=30),
    keep_logs: dt.timedelta = dt.timedelta(days=90),
) -> dict[str, int]:
    """Retention: finished jobs, handled webhook bodies (they hold personal data) and old call
    logs go; dead jobs and unhandled events stay until someone deals with them."""
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
    ):
        result = session.execute(stmt.execution_options(synchronize_session=False))
        counts[name] = int(getattr(result, "rowcount", 0) or 0)
    return counts
