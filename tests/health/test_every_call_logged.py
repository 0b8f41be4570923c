"""Every call site logs: each outbox job kind that calls a provider, and each console action or
periodic service that calls one, is driven against the real sandbox, and the call log must hold
one ``integration_logs`` row per API request the sandbox answered (it counts them: GET
/_sandbox/requests; the outbound webhook's test ping is counted by the receiver it reached),
each for the right workspace, with the job's id where a job made it, and an outcome.

A call made outside any ``call_log.scope`` has no workspace, and one made outside a
``within(..., slug=)`` block is not logged at all: either fails here. The services are called
the way the console, the sidecar and the scheduler call them (the console's ``change_in_steps``
adds a scope of its own around them; the services must not rely on it).

On both databases: the call log's writer and the jobs run on each.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.accounts import plans
from backend.connections import credentials, google_tokens, oauth, providers, stripe_webhook_setup
from backend.connections import service as connections
from backend.connections.providers import PLATFORM_STRIPE
from backend.integrations import call_log
from backend.integrations.outbound_webhooks import generate_secret
from backend.invoicing import buyers, reconciliation
from backend.invoicing import service as invoicing
from backend.jobs.runner import Runner
from backend.platform import call_log_writer, incidents, outbox
from backend.platform.actors import Actor
from models import (
    AlertPriority,
    Buyer,
    Integration,
    IntegrationLog,
    IntegrationStatus,
    Invoice,
    JobStatus,
    OutboxJob,
    Plan,
    Role,
)
from tests import factories
from tests.sandbox.stripe_support import new_account
from tests.support import oauth_flow
from tests.support.google_oauth import consent, query_of, set_token_ttl
from tests.support.hub_env import apply, connect_stripe
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox
from tests.support.servers import WebhookReceiver
from tests.support.shows import make_show
from tests.support.steps import in_steps

# The call log's provider names, and the sandbox's for the same provider.
SANDBOX_NAME = {
    "stripe": "stripe",
    "sendgrid": "sendgrid",
    "google_drive": "google",
    "messenger": "messenger",
    "slack": "slack",
    "zoho_books": "zoho",
}
# Where the outbound webhook integration sends (the receiver's other paths get the sandbox's
# own Stripe and SendGrid webhooks, which are no call of ours).
HOOK_PATH = "/outbound"


@dataclass
class World:
    engine: Engine
    sandbox: RunningSandbox
    receiver: WebhookReceiver
    workspace_id: int
    owner: Actor

    def post(self, path: str, **body: Any) -> dict[str, Any]:
        answer = httpx.post(f"{self.sandbox.url}{path}", json=body or None, timeout=30)
        answer.raise_for_status()
        made: dict[str, Any] = answer.json()
        return made

    def integration(self, provider: str, secrets: dict[str, Any], **settings: Any) -> None:
        with Session(self.engine) as session:
            row = Integration(
                workspace_id=self.workspace_id,
                provider=provider,
                display_name=provider,
                status=IntegrationStatus.ACTIVE,
                settings=settings,
            )
            session.add(row)
            session.flush()
            credentials.seal(row, secrets)
            session.commit()

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def drain(self) -> set[int]:
        """Run every due job; the ids of those that ran."""
        before = self._finished()
        runner = Runner(self.engine, "test-worker", batch=50)
        for _ in range(20):
            if not runner.run_once().claimed:
                break
        return self._finished() - before

    def _finished(self) -> set[int]:
        with Session(self.engine) as session:
            return set(
                session.scalars(select(OutboxJob.id).where(OutboxJob.status != JobStatus.PENDING))
            )

    def in_steps(self, work: Callable[[Engine], object]) -> None:
        with self.session() as session:
            in_steps(session, work)


@pytest.fixture
def world(
    make_sandbox: MakeSandbox,
    receiver: WebhookReceiver,
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> World:
    sandbox = make_sandbox()  # every provider
    hub_env["HUB_PUBLIC_CONSOLE_URL"] = "http://console.test"
    hub_env["HUB_PUBLIC_SIDECAR_URL"] = "http://sidecar.test"
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    with Session(engine) as session:
        # Another workspace first: a call attributed to the wrong one cannot pass for right.
        factories.workspace(session, slug="other", plan=Plan.BUSINESS)
        ws = factories.workspace(session, slug="shop", plan=Plan.BUSINESS)
        operator = factories.member(session, ws, email="owner@shop.test", role=Role.OWNER)
        session.commit()
        owner = Actor(operator_id=operator.id, workspace_id=ws.id, role=Role.OWNER)
    connect_stripe(engine, secret_key=new_account(sandbox.url)["secret_key"], slug="shop")
    return World(engine, sandbox, receiver, owner.workspace_id, owner)


# -- what was asked, and what was logged ----------------------------------------------------


def _start_counting(world: World) -> None:
    """From here on: the sandbox's counts, the receiver's requests and the call log's buffer
    are the action's alone (what arranging it made is dropped)."""
    httpx.delete(f"{world.sandbox.url}/_sandbox/requests", timeout=10).raise_for_status()
    with world.receiver.lock:
        world.receiver.received.clear()
    call_log.BUFFER.take()


def _asked(world: World) -> Counter[str]:
    """API requests the providers answered, by the call log's provider name."""
    answered = httpx.get(f"{world.sandbox.url}/_sandbox/requests", timeout=10).json()
    by_name = {sandbox: ours for ours, sandbox in SANDBOX_NAME.items()}
    asked = Counter({by_name[name]: int(n["requests"]) for name, n in answered.items()})
    with world.receiver.lock:
        asked["webhooks"] = sum(1 for r in world.receiver.received if r.path == HOOK_PATH)
    return +asked  # the zeros dropped


def _logged(world: World) -> list[IntegrationLog]:
    call_log_writer.flush(world.engine)
    with Session(world.engine) as session:
        return list(session.scalars(select(IntegrationLog).order_by(IntegrationLog.id)))


def _check(world: World, *, jobs: set[int] | None = None) -> None:
    asked = _asked(world)
    rows = _logged(world)
    assert asked, "the action made no provider request: it tests nothing"
    # The platform's own Stripe account is logged apart from the workspace's Stripe; the
    # sandbox counts both as Stripe.
    assert Counter("stripe" if r.provider == PLATFORM_STRIPE else r.provider for r in rows) == asked
    unattributed = [
        (r.provider, r.operation, r.workspace_id)
        for r in rows
        if r.workspace_id != world.workspace_id
    ]
    assert unattributed == [], "calls for no workspace, or another's"
    assert all(r.outcome in call_log.OUTCOMES for r in rows)
    if jobs is None:
        assert {r.job_id for r in rows} == {None}
    else:
        assert jobs, "no job ran"
        assert {r.job_id for r in rows} <= jobs and None not in {r.job_id for r in rows}


# -- outbox jobs ------------------------------------------------------------------------------


def _generate(world: World, show_id: int) -> None:
    with world.session() as session:
        invoicing.generate_all(session, actor=world.owner, show_id=show_id)
        session.commit()


def _messenger(world: World) -> None:
    page = world.post("/graph/_sandbox/pages", name="Lakeside")
    world.integration("messenger", {"page_access_token": page["page_access_token"]})


def job_invoices_and_messenger_links(world: World) -> set[int]:
    """stripe.create_invoice for two buyers; the one without an email gets its link by
    Messenger (messenger.send_checkout_link)."""
    _messenger(world)
    show = make_show(world.engine, workspace_id=world.workspace_id, buyers=2, psids=True)
    _start_counting(world)
    _generate(world, show.id)
    return world.drain()


def job_customer_sync(world: World) -> set[int]:
    show = make_show(world.engine, workspace_id=world.workspace_id, buyers=2)
    _start_counting(world)
    with world.session() as session:
        for buyer in session.scalars(select(Buyer).where(Buyer.platform_user_id.in_(show.buyers))):
            buyers.request_customer_sync(session, buyer=buyer)
        session.commit()
    return world.drain()


def job_void_invoice(world: World) -> set[int]:
    show = make_show(world.engine, workspace_id=world.workspace_id, buyers=1)
    _generate(world, show.id)
    world.drain()
    _start_counting(world)
    with world.session() as session:
        invoice = session.scalars(select(Invoice).where(Invoice.show_id == show.id)).one()
        invoicing.void(session, actor=world.owner, invoice_id=invoice.id)
        session.commit()
    return world.drain()


def job_webhook_registration(world: World) -> set[int]:
    _start_counting(world)
    with world.session() as session:
        stripe = session.scalars(
            select(Integration).where(
                Integration.workspace_id == world.workspace_id, Integration.provider == "stripe"
            )
        ).one()
        assert stripe_webhook_setup.request_if_needed(session, stripe) is not None
        session.commit()
    return world.drain()


def job_alert_delivery(world: World) -> set[int]:
    """An incident's notices: Slack's post_message, and SendGrid's mail to the owner (the
    alert_notification e-mail that alerts.email queues, sent by email.send)."""
    bot = world.post("/slack/_sandbox/tokens", team="Lakeside")
    world.integration("slack", {"bot_token": bot["token"]})
    key = world.post("/sendgrid/_sandbox/api_keys")
    world.integration("sendgrid", {"api_key": key["api_key"]}, from_email="alerts@shop.test")
    _start_counting(world)
    with world.session() as session:
        incidents.raise_incident(
            session,
            workspace_id=world.workspace_id,
            rule="breaker.open",
            entity_type="provider",
            entity_id="stripe",
            message="Stripe's breaker is open.",
            priority=AlertPriority.CRITICAL,
            occurrence=False,
        )
        session.commit()
    return world.drain()


# -- console actions and services --------------------------------------------------------------


def _keys(world: World, slug: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Working credentials (and settings) for ``slug``, made in the sandbox."""
    if slug == "stripe":
        return {"secret_key": new_account(world.sandbox.url)["secret_key"]}, None
    if slug == "sendgrid":
        return {"api_key": world.post("/sendgrid/_sandbox/api_keys")["api_key"]}, None
    if slug == "slack":
        return {"bot_token": world.post("/slack/_sandbox/tokens", team="Shop")["token"]}, None
    if slug == "messenger":
        page = world.post("/graph/_sandbox/pages", name="Shop")
        return {"page_access_token": page["page_access_token"]}, {"page_id": page["page_id"]}
    if slug == "zoho_books":
        client = world.post("/zoho/_sandbox/clients", organizations=["Shop"])
        keys = ("client_id", "client_secret", "refresh_token", "organization_id")
        return {k: client[k] for k in keys} | {"region": "eu"}, None
    if slug == "google_drive":
        info = world.post("/google/_sandbox/service_accounts", name="hub")
        return {"service_account_json": json.dumps(info)}, None
    assert slug == "webhooks"
    return {"signing_secret": generate_secret()}, {"url": world.receiver.url + HOOK_PATH}


def _connect_and_test(slug: str) -> Callable[[World], None]:
    def run(world: World) -> None:
        secrets, settings = _keys(world, slug)
        _start_counting(world)

        def connect_then_test(engine: Engine) -> None:
            context = providers.provider_context(slug, engine, workspace_id=world.workspace_id)
            connected = connections.connect_with_keys(
                engine,
                actor=world.owner,
                provider_slug=slug,
                credentials=secrets,
                settings=settings,
                context=context,
            )
            assert connected.ok, connected.message
            tested = oauth.test(engine, actor=world.owner, provider_slug=slug, context=context)
            assert tested.ok, tested.message

        world.in_steps(connect_then_test)

    run.__name__ = f"connect_and_test_{slug}"
    return run


def _stripe_consent(authorize_url: str) -> str:
    page = httpx.get(authorize_url, timeout=10)
    fields = {
        k: html.unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', page.text)
    }
    fields["decision"] = "allow"
    parts = urlsplit(authorize_url)
    answer = httpx.post(
        f"{parts.scheme}://{parts.netloc}/stripe/connect/oauth/authorize/decision",
        data=fields,
        timeout=10,
    )
    assert answer.status_code == 303
    return str(answer.headers["location"])


def _oauth_connect(world: World, provider: str) -> None:
    """An owner's Connect: consent at the provider (the browser's requests, not counted),
    then the sidecar's callback."""
    with world.session() as session:
        url = oauth_flow.authorize(session, world.owner, provider)
    back = query_of(_stripe_consent(url) if provider == "stripe" else consent(url))
    _start_counting(world)
    with world.session() as session:
        result = oauth_flow.complete(session, provider, code=back["code"], state=back["state"])
    assert result.ok, result.message


def _disconnect(world: World, provider: str) -> None:
    world.in_steps(
        lambda engine: oauth.disconnect(engine, actor=world.owner, provider_slug=provider)
    )


def oauth_stripe_callback_and_deauthorize(world: World) -> None:
    """Stripe Connect's code exchange on the platform's account, then Disconnect's
    deauthorize."""
    _oauth_connect(world, "stripe")
    _disconnect(world, "stripe")


def oauth_google_callback_test_and_revoke(world: World) -> None:
    """Google's code exchange and first Drive test, Test connection (renewing the token, which
    the sandbox expires at once), then Disconnect's revoke."""
    set_token_ttl(world.sandbox.url, 1)
    _oauth_connect(world, "google_drive")

    def test(engine: Engine) -> None:
        context = providers.provider_context("google_drive", engine)
        oauth.test(engine, actor=world.owner, provider_slug="google_drive", context=context)

    world.in_steps(test)
    _disconnect(world, "google_drive")


def google_token_refresh(world: World) -> None:
    """The scheduler's renewal of Google access tokens about to expire."""
    set_token_ttl(world.sandbox.url, 60)
    with world.session() as session:
        url = oauth_flow.authorize(session, world.owner, "google_drive")
    back = query_of(consent(url))
    with world.session() as session:
        oauth_flow.complete(session, "google_drive", code=back["code"], state=back["state"])
    _start_counting(world)
    report = google_tokens.refresh_due(world.engine)
    assert report.renewed == 1


def plan_upgrade(world: World) -> None:
    """The plan upgrade's Stripe Checkout, on the platform's own Stripe account."""
    _start_counting(world)
    url = plans.start_upgrade(
        world.engine,
        actor=world.owner,
        plan=Plan.PRO,
        success_url="http://console.test/settings?upgraded=1",
        cancel_url="http://console.test/settings",
    )
    assert url
    # Logged as the platform's account, not as the workspace's Stripe integration.
    assert {r.provider for r in _logged(world)} == {PLATFORM_STRIPE}


def _show_with_a_difference(world: World) -> int:
    """A show whose invoice our table has at another amount than Stripe's."""
    show = make_show(world.engine, workspace_id=world.workspace_id, buyers=2)
    _generate(world, show.id)
    world.drain()
    with world.session() as session:
        invoice = session.scalars(select(Invoice).where(Invoice.show_id == show.id)).first()
        assert invoice is not None and invoice.external_id
        invoice.amount_cents += 100
        session.commit()
    return show.id


def reconciliation_check_and_fix_all(world: World) -> None:
    """ "Check against Stripe", then "Fix all"."""
    show_id = _show_with_a_difference(world)
    _start_counting(world)
    world.in_steps(
        lambda engine: reconciliation.run_for_show(engine, actor=world.owner, show_id=show_id)
    )
    with world.session() as session:
        fixed = in_steps(
            session,
            lambda engine: reconciliation.fix_all(engine, actor=world.owner, show_id=show_id),
        )
    assert fixed.fixed == 1


def reconciliation_hourly(world: World) -> None:
    """The scheduler's hourly reconciliation of recent shows."""
    _show_with_a_difference(world)
    _start_counting(world)
    reconciliation.reconcile_recent(world.engine)


JOBS = [
    job_invoices_and_messenger_links,
    job_customer_sync,
    job_void_invoice,
    job_webhook_registration,
    job_alert_delivery,
]
ACTIONS = [
    *(
        _connect_and_test(slug)
        for slug in (
            "stripe",
            "sendgrid",
            "slack",
            "messenger",
            "zoho_books",
            "google_drive",
            "webhooks",
        )
    ),
    oauth_stripe_callback_and_deauthorize,
    oauth_google_callback_test_and_revoke,
    google_token_refresh,
    plan_upgrade,
    reconciliation_check_and_fix_all,
    reconciliation_hourly,
]


@pytest.mark.parametrize("drive", JOBS, ids=lambda f: f.__name__)
def test_each_job_kind_logs_each_request_for_its_workspace_and_job(
    world: World, drive: Callable[[World], set[int]]
) -> None:
    ran = drive(world)
    _check(world, jobs=ran)


@pytest.mark.parametrize("drive", ACTIONS, ids=lambda f: f.__name__)
def test_each_console_action_and_service_logs_each_request_for_its_workspace(
    world: World, drive: Callable[[World], None]
) -> None:
    drive(world)
    _check(world)


def test_every_job_kind_that_calls_a_provider_is_driven_here() -> None:
    """A new provider job kind fails this until it has a case above."""
    driven = {
        "stripe.create_invoice",
        "messenger.send_checkout_link",
        "stripe.sync_customer",
        "stripe.void_invoice",
        "stripe.register_webhook",
        "alerts.slack",
        # alerts.email queues an alert_notification; email.send mails it (job_alert_delivery).
        "email.send",
    }
    calling = {
        kind
        for kind, spec in outbox.kinds().items()
        # The product's kinds, not those tests and benchmarks declare for themselves.
        if spec.provider and spec.handler.__module__.startswith("backend.")
    }
    assert calling == driven
