"""What people do with an incident on Health: acknowledge, resolve, snooze, ignore, and read its
history. Owners and admins only (viewers are refused here, in the service, in words); every
lookup is by the actor's workspace, so another workspace's alert id is simply not found. Every
change is audited and written to the incident's history.

Tested in tests/health/test_alert_actions.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.platform import audit, incidents
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, NotFound
from models import Alert, AlertEvent, AlertState, utcnow

SNOOZE_LONGEST = dt.timedelta(days=7)


def _alert(session: Session, actor: Actor, alert_id: int) -> Alert:
    alert = session.scalars(
        select(Alert)
        .where(Alert.id == alert_id, Alert.workspace_id == actor.workspace_id)
        .with_for_update()
    ).first()
    if alert is None:
        raise NotFound("This alert is not in this workspace (it may have been removed).")
    return alert


def _changed(session: Session, actor: Actor, alert: Alert, what: str, detail: str = "") -> None:
    incidents.event(session, alert, what, actor.label, detail)
    audit.record(
        session,
        actor=actor,
        action=f"alert.{what}",
        target=f"alert:{alert.id}",
        details={"type": alert.type, "entity": alert.entity_key}
        | ({"detail": detail} if detail else {}),
    )


def acknowledge(session: Session, *, actor: Actor, alert_id: int) -> Alert:
    """Seen, someone is on it: no more four-hourly reminders. Twice changes nothing."""
    actor.require_change("acknowledge alerts")
    alert = _alert(session, actor, alert_id)
    if alert.state in (AlertState.OPEN, AlertState.SNOOZED, AlertState.IGNORED):
        alert.state, alert.acknowledged_at, alert.snoozed_until = (
            AlertState.ACKNOWLEDGED,
            utcnow(),
            None,
        )
        _changed(session, actor, alert, "acknowledge")
    return alert


def resolve(session: Session, *, actor: Actor, alert_id: int) -> Alert:
    """Fixed: a "resolved" message goes to whoever was told; if it happens again it reopens,
    marked regressed."""
    actor.require_change("resolve alerts")
    alert = _alert(session, actor, alert_id)
    if alert.state is not AlertState.RESOLVED:
        audit.record(
            session,
            actor=actor,
            action="alert.resolve",
            target=f"alert:{alert.id}",
            details={"type": alert.type, "entity": alert.entity_key},
        )
        incidents.resolve(session, alert, who=actor.label, now=utcnow(), what="resolve")
    return alert


def snooze(
    session: Session, *, actor: Actor, alert_id: int, until: dt.datetime | None = None
) -> Alert:
    """Quiet until ``until`` (an hour by default, a week at most); if it is still happening
    then, it opens again and people are told."""
    actor.require_change("snooze alerts")
    now = utcnow()
    until = until or now + dt.timedelta(hours=1)
    if not now < until <= now + SNOOZE_LONGEST:
        raise InvalidInput("Snooze for a time in the next seven days.", field="until")
    alert = _alert(session, actor, alert_id)
    if alert.state is AlertState.RESOLVED:
        raise InvalidInput("This alert is resolved already; there is nothing to snooze.")
    alert.state, alert.snoozed_until = AlertState.SNOOZED, until
    _changed(session, actor, alert, "snooze", f"until {until:%Y-%m-%d %H:%M} UTC")
    return alert


def ignore(session: Session, *, actor: Actor, alert_id: int, for_ever: bool = False) -> Alert:
    """Quiet until it escalates (or for ever): it stays listed, counted, never notified."""
    actor.require_change("ignore alerts")
    alert = _alert(session, actor, alert_id)
    if alert.state is AlertState.RESOLVED:
        raise InvalidInput("This alert is resolved already; there is nothing to ignore.")
    alert.state, alert.ignored_for_ever, alert.snoozed_until = AlertState.IGNORED, for_ever, None
    _changed(session, actor, alert, "ignore", "for ever" if for_ever else "until it escalates")
    return alert


@dataclass(frozen=True)
class Step:
    at: dt.datetime
    what: str
    who: str
    detail: str


def history(session: Session, *, workspace_id: int, alert_id: int, limit: int = 50) -> list[Step]:
    """An incident's history, newest first (only the workspace's own)."""
    rows = session.scalars(
        select(AlertEvent)
        .where(AlertEvent.alert_id == alert_id, AlertEvent.workspace_id == workspace_id)
        .order_by(AlertEvent.at.desc(), AlertEvent.id.desc())
        .limit(limit)
    )
    return [Step(r.at, r.what, r.who, r.detail) for r in rows]
