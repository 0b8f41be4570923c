"""The audit trail: who changed what, when. Written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.platform.actors import Actor
from models import AuditLog, utcnow


def record(
    session: Session,
    *,
    actor: Actor | str,
    action: str,
    target: str,
    workspace_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Add an audit row. ``details`` must never hold secrets: callers pass masked values."""
    if isinstance(actor, Actor):
        label, workspace_id = actor.label, workspace_id or actor.workspace_id
    else:
        label = actor
    row = AuditLog(
        workspace_id=workspace_id,
        actor=label,
        action=action,
        target=target,
        details=details or {},
        at=utcnow(),
    )
    session.add(row)
    return row


def recent(session: Session, *, workspace_id: int, limit: int = 50) -> list[AuditLog]:
    stmt = (
        select(AuditLog)
        .where(AuditLog.workspace_id == workspace_id)
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def for_target(
    session: Session, *, workspace_id: int, target: str, limit: int = 30
) -> list[AuditLog]:
    """The trail of one thing (``integration:stripe``): who connected, tested, rotated it."""
    stmt = (
        select(AuditLog)
        .where(AuditLog.workspace_id == workspace_id, AuditLog.target == target)
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))
