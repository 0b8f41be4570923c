"""Integration health: success rate and latency per provider, each provider's breaker and the
work waiting on it now, and the workspace's alerts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from backend.connections import provider_status
from backend.platform import circuits
from backend.platform.provider_failures import provider_name
from models import (
    OUTCOME_COLUMNS,
    Alert,
    AlertState,
    CallMinute,
    Integration,
    IntegrationLog,
    IntegrationStatus,
    JobStatus,
    OutboxJob,
    utcnow,
)


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
    """Calls, failures and mean latency per provider over ``window``, from the rollups."""
    since = (now or utcnow()).replace(second=0, microsecond=0) - window
    total = sum(CallMinute.__table__.c[name] for name in OUTCOME_COLUMNS)
    rows = session.execute(
        select(
            CallMinute.provider,
            func.sum(total),
            func.sum(total - CallMinute.ok),
            func.sum(CallMinute.latency_ms_sum),
        )
        .where(CallMinute.workspace_id == workspace_id, CallMinute.minute >= since)
        .group_by(CallMinute.provider)
        .order_by(CallMinute.provider)
    ).all()
    return [
        ProviderHealth(p, int(n), int(f or 0), round(int(ms or 0) / int(n)) if n else None)
        for p, n, f, ms in rows
    ]


def listed_alerts(
    session: Session, *, workspace_id: int, limit: int = 50, resolved_limit: int = 10
) -> list[Alert]:
    """The Health page's alerts: every unresolved one first (open, acknowledged, snoozed,
    ignored: someone may have to act on them), the most recently seen first; then the few
    resolved most recently, so that what was just fixed (and its history) is still there."""
    unresolved = session.scalars(
        select(Alert)
        .where(Alert.workspace_id == workspace_id, Alert.state != AlertState.RESOLVED)
        .order_by(Alert.last_seen_at.desc(), Alert.id.desc())
        .limit(limit)
    ).all()
    resolved = session.scalars(
        select(Alert)
        .where(Alert.workspace_id == workspace_id, Alert.state == AlertState.RESOLVED)
        .order_by(Alert.resolved_at.desc(), Alert.id.desc())
        .limit(resolved_limit)
    ).all()
    return [*unresolved, *resolved]


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


@dataclass(frozen=True, slots=True)
class ProviderNow:
    """A provider as it stands now: its breaker (shared by every workspace), the workspace's
    jobs waiting on it, and what the workspace's integration says (provider_status)."""

    provider: str
    name: str
    breaker: str  # closed | open | half_open
    opened_until: dt.datetime | None
    last_error: str | None
    waiting: int
    state: str  # provider_status: ready | unavailable | refused | not_connected
    message: str

    @property
    def troubled(self) -> bool:
        return self.breaker != "closed" or self.state in (
            provider_status.UNAVAILABLE,
            provider_status.REFUSED,
        )


def providers_now(session: Session, *, workspace_id: int) -> list[ProviderNow]:
    """Every provider where this workspace's account has a breaker, or work waiting, or whose
    integration here is in Error or found the provider unavailable. Only this workspace's."""
    # The workspace's own breakers only: another tenant's outage and errors are not shown here.
    breakers = {c.provider: c for c in circuits.states(session, workspace_id=workspace_id)}
    waiting = dict(
        session.execute(
            select(OutboxJob.provider, func.count())
            .where(
                OutboxJob.workspace_id == workspace_id,
                OutboxJob.provider.is_not(None),
                OutboxJob.status.in_([JobStatus.PENDING, JobStatus.RUNNING]),
            )
            .group_by(OutboxJob.provider)
        ).all()
    )
    troubled = session.scalars(
        select(Integration.provider).where(
            Integration.workspace_id == workspace_id,
            or_(
                Integration.status == IntegrationStatus.ERROR,
                and_(
                    Integration.status == IntegrationStatus.ACTIVE,
                    Integration.last_error.is_not(None),
                ),
            ),
        )
    ).all()
    out = []
    for provider in sorted(set(breakers) | {str(p) for p in waiting} | set(troubled)):
        breaker = breakers.get(provider)
        now = provider_status.state(session, workspace_id=workspace_id, provider=provider)
        out.append(
            ProviderNow(
                provider=provider,
                name=provider_name(provider),
                breaker=breaker.state if breaker else "closed",
                opened_until=breaker.opened_until if breaker else None,
                last_error=breaker.last_error if breaker and breaker.state != "closed" else None,
                waiting=int(waiting.get(provider, 0)),
                state=now.state,
                message=now.message,
            )
        )
    return out
