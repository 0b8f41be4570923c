"""Alerts: one helper shortens every alert's text at a word, and people acknowledge them. The
alert of a webhook registration that Stripe refused comes through the real SDK and sandbox."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import backend.sandbox.stripe as stripe_emulator
from backend.connections import stripe_webhook_setup
from backend.health import alert_actions, dashboard
from backend.jobs.runner import Runner
from backend.platform import alerts, incidents
from backend.platform.actors import Actor
from backend.platform.errors import NotFound, PermissionDenied
from models import Alert, AlertPriority, AlertState, AuditLog, Integration, Role
from tests import factories
from tests.sandbox.stripe_support import new_account
from tests.support.hub_env import apply, connect_stripe
from tests.support.sandbox_fixtures import MakeSandbox

SENTENCE = (
    "Stripe refused the key: The provided key does not have the required permissions for "
    "this endpoint on account acct_1SandboxLakeside0."
)


def test_clip_keeps_short_texts_and_cuts_long_ones_after_a_whole_word() -> None:
    assert alerts.clip(SENTENCE, 500) == SENTENCE
    clipped = alerts.clip(SENTENCE, 40)
    assert clipped == "Stripe refused the key: The provided…"
    assert len(clipped) <= 40
    # A cut that falls just after a word keeps that word; trailing punctuation goes.
    assert alerts.clip("one two, three", 9) == "one two…"
    # Only a word longer than the limit is cut inside it.
    assert alerts.clip("x" * 50, 10) == "x" * 9 + "…"


def test_every_alert_writer_shortens_at_a_word(session: Session) -> None:
    ws = factories.workspace(session)
    long = " ".join(["permission"] * 200)
    assert incidents.raise_incident(
        session,
        workspace_id=ws.id,
        rule="provider.failing",
        entity_type="provider",
        entity_id="stripe",
        message=long,
        priority=AlertPriority.HIGH,
    ).new
    alert = session.scalars(select(Alert)).one()
    assert len(alert.message) <= alerts.MESSAGE_LIMIT
    assert alert.message.endswith("permission…")


def test_a_refused_webhook_registration_alerts_in_whole_words_and_can_be_acknowledged(
    make_sandbox: MakeSandbox,
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> None:
    sandbox = make_sandbox(providers=[stripe_emulator])
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    # A key whose Webhook Endpoints permission was taken away after it was connected.
    keys = new_account(sandbox.url, restricted_permissions={"*": "read"})
    workspace_id = connect_stripe(engine, secret_key=keys["restricted_key"])
    with Session(engine) as session:
        row = session.scalars(select(Integration)).one()
        assert stripe_webhook_setup.request_if_needed(session, row)
        session.commit()
    Runner(engine, "test-worker", batch=10).run_once()

    with Session(engine, expire_on_commit=False) as session:
        alert = session.scalars(select(Alert)).one()
        assert alert.workspace_id == workspace_id and alert.state is AlertState.OPEN
        # Stripe's whole explanation is there, and nothing is cut inside a word.
        assert "Having the 'rak_webhook_write' permission would allow this request" in (
            alert.message
        )
        assert alert.message.endswith(
            "Open Jobs to see them and replay them once the cause is fixed."
        )
        assert alert.entity_key == "job_kind:stripe.register_webhook"
        assert keys["restricted_key"] not in alert.message

        viewer = Actor(operator_id=3, workspace_id=workspace_id, role=Role.VIEWER)
        with pytest.raises(PermissionDenied):
            alert_actions.acknowledge(session, actor=viewer, alert_id=alert.id)
        other = factories.workspace(session, slug="other")
        stranger = Actor(operator_id=2, workspace_id=other.id, role=Role.OWNER)
        with pytest.raises(NotFound):
            alert_actions.acknowledge(session, actor=stranger, alert_id=alert.id)

        owner = Actor(operator_id=1, workspace_id=workspace_id, role=Role.ADMIN)
        acknowledged = alert_actions.acknowledge(session, actor=owner, alert_id=alert.id)
        assert acknowledged.state is AlertState.ACKNOWLEDGED and acknowledged.acknowledged_at
        alert_actions.acknowledge(session, actor=owner, alert_id=alert.id)  # twice: no change
        session.commit()
        assert dashboard.figures(session, workspace_id=workspace_id).open_alerts == 0
        audit = session.scalars(select(AuditLog).where(AuditLog.action == "alert.acknowledge"))
        assert len(audit.all()) == 1
