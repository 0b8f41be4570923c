"""Alerts an operator reads on Health: every writer raises them through here (so their text is
shortened the same way, never mid-word), and people acknowledge them."""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from backend.platform import audit
from backend.platform.actors import Actor
from backend.platform.errors import NotFound
from models import Alert, AlertPriority, AlertState, utcnow

# An alert is read in a table row: long enough for a provider's sentence, short enough to read.
MESSAGE_LIMIT = 600
ELLIPSIS = "…"


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` in at most ``limit`` characters, cut after a whole word with an ellipsis.
    Only a single word longer than the limit (a URL, say) is cut inside it."""
    text = text.strip()
    if len(text) <= limit:
        return text
    room = max(0, limit - len(ELLIPSIS))
    head = text[:room]
    if not text[room].isspace():
        # The cut fell inside a word: go back to the space before it, if there is one.
        space = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
        if space > 0:
            head = head[:space]
    return head.rstrip(" \t\n,;:-") + ELLIPSIS


def add(
    session: Session,
    *,
    workspace_id: int | None,
    type_: str,
    message: str,
    priority: AlertPriority = AlertPriority.NORMAL,
    entity_type: str | None = None,
    entity_id: str | None = None,
) -> Alert:
    alert = Alert(
        workspace_id=workspace_id,
        type=type_,
        priority=priority,
        message=clip(message),
        entity_type=entity_type,
        entity_id=entity_id,
    )
    session.add(alert)
    return alert


def raise_once(
    session: Session,
    *,
    workspace_id: int | None,
    type_: str,
    entity_type: str,
    entity_id: str,
    message: str,
    priority: AlertPriority,
) -> bool:
    """An alert per (type, entity) while one is open: the operator is told once, not nightly."""
    already = session.scalar(
        select(
            exists().where(
                Alert.type == type_,
                Alert.entity_type == entity_type,
                Alert.entity_id == entity_id,
                Alert.state != AlertState.RESOLVED,
                Alert.workspace_id.is_(None)
                if workspace_id is None
                else Alert.workspace_id == workspace_id,
            )
        )
    )
    if already:
        return False
    add(
        session,
        workspace_id=workspace_id,
        type_=type_,
        message=message,
        priority=priority,
        entity_type=entity_type,
        entity_id=entity_id,
    )
    return True


def acknowledge(session: Session, *, actor: Actor, alert_id: int) -> Alert:
    """Mark an alert seen (owners and admins): it stays listed until resolved but
    no longer counts as open. Acknowledging twice changes nothing."""
    actor.require_change("acknowledge alerts")
    alert = session.scalars(
        select(Alert).where(Alert.id == alert_id, Alert.workspace_id == actor.workspace_id)
    ).first()
    if alert is None:
        raise NotFound("This alert is not in this workspace (it may have been removed).")
    if alert.state is AlertState.OPEN:
        alert.state = AlertState.ACKNOWLEDGED
        alert.acknowledged_at = utcnow()
        audit.record(
            session,
            actor=actor,
            action="alert.acknowledge",
            target=f"alert:{alert.id}",
            details={"type": alert.type},
        )
    return alert
