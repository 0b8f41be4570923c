"""Integration health: success rate and latency per provider, and the open alerts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from models import Alert, AlertState, IntegrationLog, utcnow


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    provider: str
    calls: int
    failures: int
    avg_latency_ms: int | None

    @property
    def success_rate(self) -> float:
        return 1.0 if self.calls == 0 else (self.calls - self.failures) / self.calls


def provider_health(
    session: Session,
    *,
    workspace_id: int,
    window: dt.timedelta = dt.timedelta(hours=24),
    now: dt.datetime | None = None,
) -> list[ProviderHealth]:
    since = (now or utcnow()) - window
    rows = session.execute(
        select(
            IntegrationLog.provider,
            func.count(),
            func.sum(case((IntegrationLog.status != "ok", 1), else_=0)),
            func.avg(IntegrationLog.latency_ms),
        )
        .where(IntegrationLog.workspace_id == workspace_id, IntegrationLog.at >= since)
        .group_by(IntegrationLog.provider)
        .order_by(IntegrationLog.provider)
    ).all()
    return [
        ProviderHealth(p, int(n), int(f or 0), None if avg is None else round(float(avg)))
        for p, n, f, avg in rows
    ]


def open_alerts(session: Session, *, workspace_id: int, limit: int = 50) -> list[Alert]:
    stmt = (
        select(Alert)
        .where(Alert.workspace_id == workspace_id, Alert.state != AlertState.RESOLVED)
        .order_by(Alert.created_at.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def recent_calls(
    session: Session, *, workspace_id: int, provider: str, limit: int = 20
) -> list[IntegrationLog]:
    stmt = (
        select(IntegrationLog)
        .where(IntegrationLog.workspace_id == workspace_id, IntegrationLog.provider == provider)
        .order_by(IntegrationLog.at.desc(), IntegrationLog.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))
