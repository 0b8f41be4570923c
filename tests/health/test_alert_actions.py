"""What people do with an incident: owners and admins only, in their own workspace, every change
audited and in the incident's history."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.health import alert_actions
from backend.platform import incidents
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, NotFound, PermissionDenied
from models import Alert, AlertPriority, AlertState, AuditLog, Role, utcnow
from tests import factories


def _incident(session: Session, ws: int) -> Alert:
    return incidents.raise_incident(
        session,
        workspace_id=ws,
        rule="provider.failing",
        entity_type="provider",
        entity_id="stripe",
        message="Stripe is failing",
        priority=AlertPriority.HIGH,
    ).alert


def test_viewers_and_other_workspaces_cannot_change_an_alert(session: Session) -> None:
    a, b = factories.workspace(session, slug="a").id, factories.workspace(session, slug="b").id
    alert = _incident(session, a)
    viewer = Actor(operator_id=1, workspace_id=a, role=Role.VIEWER)
    stranger = Actor(operator_id=2, workspace_id=b, role=Role.OWNER)
    for act in (alert_actions.acknowledge, alert_actions.resolve, alert_actions.snooze):
        with pytest.raises(PermissionDenied, match="you can view but not"):
            act(session, actor=viewer, alert_id=alert.id)
        with pytest.raises(NotFound):
            act(session, actor=stranger, alert_id=alert.id)
    with pytest.raises(NotFound):
        alert_actions.ignore(session, actor=stranger, alert_id=alert.id)
    assert alert.state is AlertState.OPEN
    assert alert_actions.history(session, workspace_id=b, alert_id=alert.id) == []
    assert session.scalars(select(AuditLog)).all() == []


def test_acknowledge_snooze_ignore_resolve_are_audited_and_in_the_history(
    session: Session,
) -> None:
    ws = factories.workspace(session).id
    alert = _incident(session, ws)
    admin = Actor(operator_id=7, workspace_id=ws, role=Role.ADMIN)
    alert_actions.acknowledge(session, actor=admin, alert_id=alert.id)
    alert_actions.acknowledge(session, actor=admin, alert_id=alert.id)  # twice: no change
    assert alert.state is AlertState.ACKNOWLEDGED
    with pytest.raises(InvalidInput):
        alert_actions.snooze(
            session, actor=admin, alert_id=alert.id, until=utcnow() + dt.timedelta(days=8)
        )
    alert_actions.snooze(session, actor=admin, alert_id=alert.id)
    assert alert.state is AlertState.SNOOZED and alert.snoozed_until is not None
    alert_actions.ignore(session, actor=admin, alert_id=alert.id, for_ever=True)
    assert alert.state is AlertState.IGNORED and alert.ignored_for_ever
    alert_actions.resolve(session, actor=admin, alert_id=alert.id)
    assert alert.state is AlertState.RESOLVED
    with pytest.raises(InvalidInput):
        alert_actions.ignore(session, actor=admin, alert_id=alert.id)
    actions = list(session.scalars(select(AuditLog.action).order_by(AuditLog.id)))
    assert actions == ["alert.acknowledge", "alert.snooze", "alert.ignore", "alert.resolve"]
    steps = alert_actions.history(session, workspace_id=ws, alert_id=alert.id)
    whats = [s.what for s in reversed(steps)]
    assert whats[:2] == ["raised", "notified"]
    assert whats[2:] == ["acknowledge", "snooze", "ignore", "resolve", "notified"]
    assert {s.who for s in steps if s.what in ("snooze", "resolve")} == {"operator:7"}


def test_a_snoozed_incident_still_happening_after_its_snooze_opens_again(
    session: Session,
) -> None:
    ws = factories.workspace(session).id
    alert = _incident(session, ws)
    owner = Actor(operator_id=1, workspace_id=ws, role=Role.OWNER)
    until = utcnow() + dt.timedelta(minutes=30)
    alert_actions.snooze(session, actor=owner, alert_id=alert.id, until=until)
    incidents.raise_incident(
        session,
        workspace_id=ws,
        rule="provider.failing",
        entity_type="provider",
        entity_id="stripe",
        message="again",
        priority=AlertPriority.HIGH,
        now=until - dt.timedelta(minutes=1),
    )
    assert alert.state is AlertState.SNOOZED and alert.notified_count == 1
    incidents.raise_incident(
        session,
        workspace_id=ws,
        rule="provider.failing",
        entity_type="provider",
        entity_id="stripe",
        message="again",
        priority=AlertPriority.HIGH,
        now=until,
    )
    assert alert.state is AlertState.OPEN and alert.notified_count == 2
