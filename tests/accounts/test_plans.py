"""Plans: upgrade through the platform's Stripe Checkout (sandbox), and the platform webhooks
that set the plan, order-independent, switching off what a downgrade no longer includes."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import backend.sandbox.stripe
from backend.accounts import plans
from backend.connections import credentials
from backend.platform import inbox
from backend.platform.actors import Actor
from backend.platform.errors import PermissionDenied
from models import AuditLog, InboundEvent, Integration, IntegrationStatus, Plan, Role, Workspace
from tests import factories
from tests.support.hub_env import apply
from tests.support.sandbox_fixtures import MakeSandbox
from tests.support.servers import WebhookReceiver


def _event(
    session: Session, event_type: str, obj: dict[str, Any], created: int, n: int = 0
) -> InboundEvent:
    row = InboundEvent(
        provider="stripe_platform",
        external_id=f"evt_{event_type}_{created}_{n}",
        event_type=event_type,
        workspace_id=None,
        payload={"id": f"evt_{n}", "type": event_type, "created": created, "data": {"object": obj}},
        status="pending",
        attempts=0,
    )
    session.add(row)
    session.flush()
    return row


def _apply(session: Session, event: InboundEvent) -> None:
    handler = inbox.handler_for(event.provider, event.event_type)
    assert handler is not None
    handler(session, event)


def _subscription(ws: Workspace, key: str, status: str = "active") -> dict[str, Any]:
    return {
        "object": "subscription",
        "id": "sub_1",
        "customer": "cus_1",
        "status": status,
        "metadata": {"workspace_id": str(ws.id)},
        "items": {"data": [{"price": {"lookup_key": key}}]},
    }


def _stripe_row(session: Session, ws: Workspace, provider: str = "stripe") -> Integration:
    row = Integration(
        workspace_id=ws.id,
        provider=provider,
        display_name=provider,
        status=IntegrationStatus.ACTIVE,
    )
    session.add(row)
    session.flush()
    credentials.seal(row, {"secret_key": "sk_test_x"})
    return row


def test_subscription_created_sets_the_plan_and_records_ids(session: Session) -> None:
    ws = factories.workspace(session, plan=Plan.FREE)
    _apply(
        session,
        _event(session, "customer.subscription.created", _subscription(ws, "hub_pro_monthly"), 100),
    )
    assert ws.plan is Plan.PRO
    assert (ws.platform_customer_id, ws.platform_subscription_id) == ("cus_1", "sub_1")
    change = session.scalars(select(AuditLog).where(AuditLog.action == "plan.change")).one()
    assert change.details["from"] == "free" and change.details["to"] == "pro"


def test_an_older_event_never_overwrites_a_newer_plan(session: Session) -> None:
    ws = factories.workspace(session, plan=Plan.FREE)
    upgrade = _subscription(ws, "hub_business_monthly")
    first = _subscription(ws, "hub_pro_monthly")
    # Delivered newest first.
    _apply(session, _event(session, "customer.subscription.updated", upgrade, 200))
    _apply(session, _event(session, "customer.subscription.created", first, 100))
    assert ws.plan is Plan.BUSINESS
    # And a duplicate of the newest changes nothing.
    _apply(session, _event(session, "customer.subscription.updated", upgrade, 200, n=1))
    assert ws.plan is Plan.BUSINESS


def test_cancellation_switches_off_integrations_above_free_and_keeps_them(session: Session) -> None:
    ws = factories.workspace(session, plan=Plan.FREE)
    _apply(
        session,
        _event(session, "customer.subscription.created", _subscription(ws, "hub_pro_monthly"), 100),
    )
    row = _stripe_row(session, ws)
    _apply(
        session,
        _event(
            session,
            "customer.subscription.deleted",
            _subscription(ws, "hub_pro_monthly", "canceled"),
            300,
        ),
    )
    assert ws.plan is Plan.FREE
    assert row.status is IntegrationStatus.INACTIVE
    assert row.last_error == "Inactive: Stripe needs the Pro plan; this workspace is now on Free."
    assert row.credentials_enc is not None  # kept, not deleted
    # A late "created" for the cancelled subscription does not bring the plan back.
    _apply(
        session,
        _event(
            session, "customer.subscription.created", _subscription(ws, "hub_pro_monthly"), 100, n=2
        ),
    )
    assert ws.plan is Plan.FREE


def test_downgrade_to_pro_keeps_one_payment_provider(session: Session) -> None:
    ws = factories.workspace(session, plan=Plan.FREE)
    _apply(
        session,
        _event(
            session, "customer.subscription.created", _subscription(ws, "hub_business_monthly"), 100
        ),
    )
    stripe_row = _stripe_row(session, ws)
    zoho = _stripe_row(session, ws, "zoho_books")
    sendgrid = _stripe_row(session, ws, "sendgrid")
    _apply(
        session,
        _event(session, "customer.subscription.updated", _subscription(ws, "hub_pro_monthly"), 200),
    )
    assert ws.plan is Plan.PRO
    assert stripe_row.status is IntegrationStatus.ACTIVE
    assert sendgrid.status is IntegrationStatus.ACTIVE
    assert zoho.status is IntegrationStatus.INACTIVE and "Business plan" in (zoho.last_error or "")


def test_only_an_owner_starts_an_upgrade(engine: Engine, session: Session) -> None:
    ws = factories.workspace(session, plan=Plan.FREE)
    session.commit()
    admin = Actor(operator_id=1, workspace_id=ws.id, role=Role.ADMIN)
    with pytest.raises(PermissionDenied):
        plans.start_upgrade(
            engine, actor=admin, plan=Plan.PRO, success_url="http://x", cancel_url="http://x"
        )


def _platform_events(receiver: WebhookReceiver, types: set[str]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        with receiver.lock:
            events = [json.loads(r.body) for r in receiver.received if r.path == "/stripe"]
        if types <= {e["type"] for e in events} or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def test_upgrade_through_sandbox_checkout_unlocks_pro(
    engine: Engine,
    db_url: str,
    make_sandbox: MakeSandbox,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> None:
    sandbox = make_sandbox(providers=[backend.sandbox.stripe])
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    with Session(engine, expire_on_commit=False) as session:
        ws = factories.workspace(session, plan=Plan.FREE)
        session.commit()
    owner = Actor(operator_id=1, workspace_id=ws.id, role=Role.OWNER)
    url = plans.start_upgrade(
        engine,
        actor=owner,
        plan=Plan.PRO,
        success_url="http://console/settings/plan?upgraded=1",
        cancel_url="http://console/settings/plan",
    )
    assert "/stripe/_pages/checkout/" in url
    with Session(engine) as session:
        audited = session.scalars(select(AuditLog).where(AuditLog.action == "plan.checkout")).one()
        assert audited.details == {"plan": "pro"}
    # The owner presses Pay on the hosted page.
    paid = httpx.post(url + "/pay", follow_redirects=False, timeout=10)
    assert paid.status_code == 303 and "upgraded=1" in paid.headers["location"]
    wanted = {"checkout.session.completed", "customer.subscription.created"}
    events = [e for e in _platform_events(receiver, wanted) if e["type"] in wanted]
    assert {e["type"] for e in events} == wanted
    with Session(engine, expire_on_commit=False) as session:
        for payload in events:
            row = InboundEvent(
                provider="stripe_platform",
                external_id=payload["id"],
                event_type=payload["type"],
                payload=payload,
                status="pending",
                attempts=0,
            )
            session.add(row)
            session.flush()
            _apply(session, row)
        session.commit()
        workspace = session.get(Workspace, ws.id)
        assert workspace is not None and workspace.plan is Plan.PRO
        assert workspace.platform_subscription_id and workspace.platform_customer_id
    # The price was created once, by lookup key: a second upgrade reuses it.
    business = plans.start_upgrade(
        engine,
        actor=owner,
        plan=Plan.BUSINESS,
        success_url="http://c/ok",
        cancel_url="http://c/no",
    )
    assert "/stripe/_pages/checkout/" in business
