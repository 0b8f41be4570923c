"""The Health page's Alerts section (console/state/health.py): each action calls the service as
the signed-in operator and shows what came of it, a refusal in the service's own words; the
history dialog shows the alert's steps. ``read``/``change`` are replaced by ones that run the
work in the test's session as a chosen actor (the real ones resolve a session cookie)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from backend.platform import incidents
from backend.platform.actors import Actor
from backend.platform.errors import ServiceError
from console.state import health
from console.state.base import Outcome
from console.state.health import HealthState
from models import AlertPriority, Role
from tests import factories
from tests.support.matrix_console import Called, call


def _as(monkeypatch: pytest.MonkeyPatch, session: Session, actor: Actor) -> None:
    async def run(state: object, work: Any, **_: object) -> Outcome[object]:
        try:
            with session.begin_nested():
                return Outcome(value=work(session, actor))
        except ServiceError as exc:
            return Outcome(error=exc)

    monkeypatch.setattr(health, "change", run)
    monkeypatch.setattr(health, "read", run)


def _incident(session: Session, workspace_id: int) -> int:
    raised = incidents.raise_incident(
        session,
        workspace_id=workspace_id,
        rule="breaker.open",
        priority=AlertPriority.HIGH,
        message="Stripe's breaker is open.",
        entity_type="provider",
        entity_id="stripe",
    )
    session.flush()
    return raised.alert.id


def _toasts(called: Called) -> str:
    return " ".join(repr(e) for e in called.events)


def _act(name: str, alert_id: int | str, *, prepare: Any = None) -> Called:
    called = call(
        HealthState, name, token="t", path="/health", args=(str(alert_id),), prepare=prepare
    )
    assert called.error is None
    return called


def test_each_action_changes_the_alert_and_the_list_shows_it(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = factories.workspace(session)
    alert_id = _incident(session, ws.id)
    _as(monkeypatch, session, Actor(operator_id=1, workspace_id=ws.id, role=Role.ADMIN))
    for action, state, said in (
        ("acknowledge", "acknowledged", "Alert acknowledged."),
        ("snooze", "snoozed", "Alert snoozed for an hour."),
        ("ignore", "ignored", "Alert ignored until it escalates."),
        ("resolve", "resolved", "Alert resolved."),
    ):
        called = _act(action, alert_id)
        assert [(a["id"], a["state"]) for a in called.state.alerts] == [(str(alert_id), state)]
        assert said in _toasts(called)
    assert called.state.alerts[0]["actionable"] == ""


def test_a_refusal_is_shown_in_the_services_words_and_changes_nothing(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = factories.workspace(session)
    alert_id = _incident(session, ws.id)
    _as(monkeypatch, session, Actor(operator_id=3, workspace_id=ws.id, role=Role.VIEWER))
    called = _act("resolve", alert_id)
    assert "resolve alerts" in _toasts(called)  # PermissionDenied names what was refused
    assert "Alert resolved." not in _toasts(called)
    assert (
        incidents.find_unresolved(
            session, workspace_id=ws.id, rule="breaker.open", key="provider:stripe"
        )
        is not None
    )

    _as(monkeypatch, session, Actor(operator_id=1, workspace_id=ws.id, role=Role.OWNER))
    _act("resolve", alert_id)
    called = _act("snooze", alert_id)
    assert "This alert is resolved already; there is nothing to snooze." in _toasts(called)


def test_the_history_dialog_shows_the_alerts_steps_and_follows_an_action(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = factories.workspace(session)
    alert_id = _incident(session, ws.id)
    _as(monkeypatch, session, Actor(operator_id=3, workspace_id=ws.id, role=Role.VIEWER))
    called = _act("show_history", alert_id)
    assert called.state.history_open
    assert [h["what"] for h in called.state.history][-1] == "raised"

    _as(monkeypatch, session, Actor(operator_id=1, workspace_id=ws.id, role=Role.ADMIN))

    def dialog_open(state: Any) -> None:
        state.history_open, state.history_id = True, str(alert_id)

    called = _act("acknowledge", alert_id, prepare=dialog_open)
    assert called.state.history[0]["what"] == "acknowledge"
    assert called.state.history[0]["who"] == "operator:1"


def test_another_workspaces_alert_is_not_found_and_its_history_not_shown(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, theirs = factories.workspace(session), factories.workspace(session, slug="theirs")
    their_alert = _incident(session, theirs.id)
    _as(monkeypatch, session, Actor(operator_id=1, workspace_id=mine.id, role=Role.OWNER))
    called = _act("acknowledge", their_alert)
    assert "This alert is not in this workspace" in _toasts(called)
    assert _act("show_history", their_alert).state.history == []
    assert "not in this workspace" in _toasts(_act("ignore", "not a number"))
