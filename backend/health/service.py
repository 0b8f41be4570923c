"""The workspace's alerts as the Health page lists them, and a provider's latest calls as its
manage page shows them. The tiles and charts are ``page``'s (tiles, figures, impact …)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Alert, AlertState, IntegrationLog


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
