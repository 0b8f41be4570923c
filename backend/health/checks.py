"""Provider health alerts: a workspace is told once when most of its calls to a provider fail."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from backend.platform.incidents import raise_incident
from models import AlertPriority, IntegrationLog, utcnow

FAILURE_RATE_ALERT = 0.5
HEALTH_WINDOW = dt.timedelta(minutes=15)
HEALTH_MIN_CALLS = 10


def check_provider_health(session: Session, *, now: dt.datetime | None = None) -> int:
    """Alert where more than half of a workspace's calls to a provider failed in 15 minutes."""
    now = now or utcnow()
    rows = session.execute(
        select(
            IntegrationLog.workspace_id,
            IntegrationLog.provider,
            func.count(),
            func.sum(case((IntegrationLog.status != "ok", 1), else_=0)),
        )
        .where(IntegrationLog.at >= now - HEALTH_WINDOW)
        .group_by(IntegrationLog.workspace_id, IntegrationLog.provider)
    ).all()
    raised = 0
    for workspace_id, provider, calls, failures in rows:
        failures = int(failures or 0)
        if calls >= HEALTH_MIN_CALLS and failures / calls > FAILURE_RATE_ALERT:
            raised += raise_incident(
                session,
                workspace_id=workspace_id,
                rule="provider.failing",
                entity_type="provider",
                entity_id=provider,
                priority=AlertPriority.HIGH,
                message=f"{failures} of {calls} calls to {provider} failed in the last 15 "
                "minutes. Work for it is waiting in the queue; see Health.",
                occurrence=False,
            ).new
    return raised
