"""No tenant waits on another's provider (issue 13, item 4): while workspace A's "Test connection"
waits on a slow Stripe, workspace B's Stripe webhook is stored and answered through the real
sidecar, and another operator logs in. Before, the test held the database's write lock (SQLite
begins every transaction IMMEDIATE) for the whole call, and both waited behind it.

The figure (B's webhook answered within 200 ms on SQLite while A's test waits 8 s) is measured
by bench/bench_lock_hold.py; here only the order is checked, which a loaded machine keeps: B's
webhook and the login are done while A's test is still waiting."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import backend.sandbox.stripe as stripe_emulator
from backend.accounts import service as accounts
from backend.api.app import create_app
from backend.connections import credentials, oauth, providers, views
from backend.db import get_engine
from backend.platform.actors import Actor
from models import InboundEvent, Integration, IntegrationStatus, Plan, Role
from tests import factories
from tests.api.webhook_support import settings, stripe_v1
from tests.sandbox.stripe_support import new_account
from tests.support.hub_env import apply
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox
from tests.support.servers import serve

SLOW_STRIPE_SECONDS = 8
B_SECRET = "whsec_beta_workspace_secret_0123456789abcdef"


def _in_flight(sandbox: RunningSandbox) -> int:
    counts = httpx.get(f"{sandbox.url}/_sandbox/requests", timeout=10).json()
    return int(counts.get("stripe", {}).get("in_flight", 0))


@pytest.fixture
def sidecar(engine: Engine) -> Iterator[str]:
    """The sidecar as it runs in production, on a loopback port, over the test database."""
    app = create_app(settings())
    app.dependency_overrides[get_engine] = lambda: engine
    with serve(app) as url:
        yield url


def _arrange(session: Session, sandbox: RunningSandbox) -> tuple[Actor, str]:
    """A: Stripe connected (a sandbox account's key). B: Stripe connected with a webhook
    signing secret, and an operator of its own."""
    alpha = factories.workspace(session, slug="alpha", plan=Plan.PRO)
    beta = factories.workspace(session, slug="beta", plan=Plan.PRO)
    owner = factories.member(session, alpha, email="owner@alpha.example", role=Role.OWNER)
    factories.member(session, beta, email="clerk@beta.example", role=Role.ADMIN)
    for workspace, secrets in (
        (alpha, {"secret_key": new_account(sandbox.url)["secret_key"]}),
        (beta, {"webhook_signing_secret": B_SECRET}),
    ):
        row = Integration(
            workspace_id=workspace.id,
            provider="stripe",
            display_name="Stripe",
            status=IntegrationStatus.ACTIVE,
        )
        session.add(row)
        session.flush()
        credentials.seal(row, secrets)
    session.commit()
    return Actor(owner.id, alpha.id, Role.OWNER, owner.email, owner.name), "beta"


def test_a_slow_connection_test_holds_up_no_other_workspace(
    engine: Engine,
    session: Session,
    db_url: str,
    make_sandbox: MakeSandbox,
    sidecar: str,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> None:
    sandbox = make_sandbox(providers=[stripe_emulator])
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    owner_a, beta = _arrange(session, sandbox)
    sandbox.switch(stripe={"latency_seconds": SLOW_STRIPE_SECONDS})

    # A presses Test connection (the console's call, on a worker thread of its own).
    tested: list[views.ConnectResult] = []
    context = providers.provider_context("stripe", engine, workspace_id=owner_a.workspace_id)
    a_test = threading.Thread(
        target=lambda: tested.append(
            oauth.test(engine, actor=owner_a, provider_slug="stripe", context=context)
        )
    )
    a_test.start()
    while _in_flight(sandbox) < 1:  # A's request is at Stripe, waiting
        assert a_test.is_alive(), f"A's test ended before it reached Stripe: {tested}"
        a_test.join(0.05)

    # Meanwhile B's Stripe sends a webhook, and B's clerk logs in.
    body = json.dumps(
        {"id": "evt_b_1", "type": "invoice.paid", "object": "event", "data": {"object": {}}}
    ).encode()
    t = int(time.time())
    answer = httpx.post(
        f"{sidecar}/webhooks/stripe/{beta}",
        content=body,
        headers={"Stripe-Signature": f"t={t},v1={stripe_v1(body, B_SECRET, t)}"},
        timeout=30,
    )
    login = accounts.attempt_login(
        engine, email="clerk@beta.example", password=factories.PASSWORD, policy=factories.POLICY
    )
    a_still_waiting = a_test.is_alive()

    a_test.join()
    assert answer.status_code == 200, answer.text
    assert isinstance(login, accounts.LoginResult), login
    assert a_still_waiting, "B's webhook or the login waited for A's call to Stripe to end"
    with Session(engine) as check:
        stored = check.scalars(select(InboundEvent.external_id)).all()
    assert stored == ["evt_b_1"]
    assert len(tested) == 1 and tested[0].ok, tested
