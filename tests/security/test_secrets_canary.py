"""The secrets canary (issue 13): every secret setting and every pasted key holds a recognisable
canary, every flow that takes a secret runs as the console and the sidecar run it, and then the
canaries are looked for everywhere a secret must not be: every log record (stdlib logging at
DEBUG, structlog's events, stdout and stderr), every cell of every table, what the console's
pages read and show (and its pickled state), every answer of the sidecar, and what reached the
operator's webhook endpoint. 0 hits.

What runs: logins (a wrong canary password, then the right one); connecting every key-based
provider with canary keys the sandbox accepts, and failing to with canary keys it refuses or
whose shape is wrong (their error messages are where a key would be echoed), one of them saved
inactive; Stripe Connect and Google through the sidecar's OAuth hop and callback (with the
platform's canary key and Google client secret); a test and a settings change; webhooks into the
sidecar signed with the canary secrets, and with wrong ones; the cron trigger and /metrics with
the right and a wrong token; the plan upgrade; the outbox drained (webhook endpoint registered,
webhooks applied); a disconnect that revokes. What providers issued during the run (OAuth tokens,
access tokens, a service account's key) is searched for too.

Not searched here: the browser's socket frames and rendered page, which need the built console:
tests/e2e/test_integrations.py pastes a canary key in Chromium and searches the socket, the page
and the state files Reflex wrote. docs/security/canary.md says what is searched and why.
"""

from __future__ import annotations

import json
import logging
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import structlog
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import backend.jobs  # noqa: F401 - declares every job kind the drain runs
from backend import logging as hub_logging
from backend.accounts import plans
from backend.accounts import service as accounts
from backend.api.app import create_app
from backend.connections import credentials, oauth, providers
from backend.connections import service as connections
from backend.connections import views as connection_views
from backend.integrations.outbound_webhooks import sign
from backend.jobs.runner import Runner
from backend.platform.actors import Actor
from backend.sandbox.google.state import SANDBOX_CLIENT_ID, open_state
from backend.sandbox.sendgrid.mailbox import seeded as sendgrid_seeded
from backend.sandbox.stripe.core import PLATFORM_ACCOUNT, ensure_seeded
from console.state.base import (
    Outcome,
    SessionState,
    account_change_in_steps,
    change,
    change_in_steps,
    read,
)
from console.state.login import _policy
from models import (
    AuditLog,
    Integration,
    IntegrationLog,
    IntegrationStatus,
    Plan,
    Role,
    Workspace,
    utcnow,
)
from tests import factories
from tests.api.webhook_support import stripe_event, stripe_v1
from tests.support import google_oauth
from tests.support.canary import (
    Canaries,
    Search,
    core,
    filler,
    search_all,
    search_database,
    setting_canaries,
    whsec,
)
from tests.support.hub_env import apply
from tests.support.own_loop import run_on_own_loop
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox
from tests.support.servers import WebhookReceiver

T = TypeVar("T")
SIDECAR = "http://testserver"  # the TestClient's origin, also the sidecar's public URL


@dataclass
class Run:
    """One run of every flow: what it touched, for the search."""

    engine: Engine
    sandbox: RunningSandbox
    canaries: Canaries
    sidecar: TestClient
    # (where, what): what the console read or showed, and what the sidecar answered.
    shown: list[tuple[str, object]] = field(default_factory=list)
    answers: list[tuple[str, object]] = field(default_factory=list)

    def console(self, token: str, work: Callable[[Session, Actor], T], what: str) -> Outcome[T]:
        """``work`` as a console page runs it (the session token resolved, a short committed
        session, refusals returned in words); what it returned is what the page shows."""
        as_page = cast(SessionState, types.SimpleNamespace(token=token))
        outcome = run_on_own_loop(change(as_page, work))
        self.shown.append((what, outcome.value if outcome.ok else outcome.refused))
        return outcome

    def console_in_steps(
        self, token: str, work: Callable[[Engine, Actor], T], what: str
    ) -> Outcome[T]:
        """``console`` for a service that calls a provider between short transactions of its
        own (connect, Test connection, disconnect, the upgrade): as the page runs it, through
        ``change_in_steps`` (the token resolved in a short read, then ``work(engine, actor)``
        with no transaction open around the provider's call)."""
        as_page = cast(SessionState, types.SimpleNamespace(token=token))
        outcome = run_on_own_loop(change_in_steps(as_page, work))
        self.shown.append((what, outcome.value if outcome.ok else outcome.refused))
        return outcome

    def page(self, token: str, work: Callable[[Session, Actor], T], what: str) -> T:
        as_page = cast(SessionState, types.SimpleNamespace(token=token))
        value = run_on_own_loop(read(as_page, work)).get()
        self.shown.append((what, value))
        return value

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        answer = self.sidecar.request(method, path, follow_redirects=False, **kwargs)
        self.answers.append(
            (
                f"{method} {urlsplit(path).path}",
                [answer.status_code, dict(answer.headers), answer.text],
            )
        )
        return answer


def _plant(
    sandbox: RunningSandbox, name: str, change_state: Callable[[dict[str, Any]], None]
) -> None:
    """Put a canary key where the provider keeps its valid keys (the sandbox's own store, as
    its helper endpoints do): the key is then accepted like one the provider issued."""
    with sandbox.ctx.store.section(name) as state:
        change_state(state)


# -- who is who -------------------------------------------------------------------------------


@dataclass
class Owner:
    email: str
    token: str
    workspace_slug: str


def _owners(run: Run) -> tuple[Owner, Owner]:
    """Two workspaces (one connects with keys, one through OAuth), each with an owner whose
    password is a canary; each logs in once with a wrong canary password, then the right one."""
    made = []
    slugs = (("keys-shop", Plan.BUSINESS), ("oauth-shop", Plan.PRO))
    # Each hashed before the transaction that stores it (docs/security/transactions.md).
    passwords = {
        slug: run.canaries.make(f"password of {slug}", "canary pass {core} word")
        for slug, _ in slugs
    }
    hashes = {slug: accounts.new_password_hash(p) for slug, p in passwords.items()}
    with Session(run.engine) as session:
        for slug, plan in slugs:
            ws = factories.workspace(session, slug=slug, plan=plan)
            password = passwords[slug]
            operator = accounts.create_operator(
                session,
                email=f"owner@{slug}.test",
                name=f"Owner of {slug}",
                password_hash=hashes[slug],
            )
            accounts.add_member(
                session, workspace_id=ws.id, operator_id=operator.id, role=Role.OWNER
            )
            made.append((slug, operator.email, password))
        session.commit()
    owners = []
    for slug, email, password in made:
        wrong = run.canaries.make(f"wrong password at {slug}", "canary-wrong-{core}")
        for attempt in (wrong, password):
            done = run_on_own_loop(
                account_change_in_steps(
                    lambda e, attempt=attempt, email=email: accounts.attempt_login(  # type: ignore[misc]
                        e, email=email, password=attempt, policy=_policy(), client_ip="203.0.113.9"
                    )
                )
            )
            # What the login form shows: its refusal (a success sets the session cookie, the
            # one place the token belongs, and redirects).
            attempt_made = done.value
            said = done.refused or (
                str(attempt_made) if isinstance(attempt_made, Exception) else ""
            )
            run.shown.append((f"login form of {slug}", said))
        result = done.get()
        assert isinstance(result, accounts.LoginResult), result
        run.canaries.add(f"session token of {slug}", result.token)
        owners.append(Owner(email, result.token, slug))
    return owners[0], owners[1]


# -- keys pasted on the manage pages ----------------------------------------------------------


def _connect(
    run: Run,
    owner: Owner,
    slug: str,
    creds: dict[str, Any],
    settings: dict[str, Any] | None = None,
    *,
    save_inactive: bool = False,
) -> connection_views.ConnectResult | None:
    outcome = run.console_in_steps(
        owner.token,
        lambda e, a: connections.connect_with_keys(
            e,
            actor=a,
            provider_slug=slug,
            credentials=creds,
            settings=settings,
            save_inactive=save_inactive,
            context=providers.provider_context(slug, e, workspace_id=a.workspace_id),
        ),
        f"manage page of {slug}: Test and save",
    )
    return outcome.value


def _keys(run: Run, owner: Owner, receiver: WebhookReceiver) -> None:
    c, sandbox = run.canaries, run.sandbox

    # Stripe: a secret key the sandbox knows, in a fresh account of its own.
    account = httpx.post(f"{sandbox.url}/stripe/_sandbox/accounts", json={}, timeout=10).json()
    stripe_key = c.make("pasted Stripe secret key", "sk_test_51canary{core}" + filler(40))

    def stripe_keys(state: dict[str, Any]) -> None:
        state["keys"][stripe_key] = state["keys"].pop(account["secret_key"])

    _plant(sandbox, "stripe", stripe_keys)
    # SendGrid, Slack, Messenger, Zoho: likewise.
    sendgrid_key = c.make("pasted SendGrid key", "SG.canary{core}." + filler(43))
    _plant(sandbox, "sendgrid", lambda s: sendgrid_seeded(s)["api_keys"].append(sendgrid_key))
    slack_made = httpx.post(f"{sandbox.url}/slack/_sandbox/tokens", json={}, timeout=10).json()
    slack_token = c.make("pasted Slack bot token", "xoxb-canary{core}-" + filler(24))
    _plant(
        sandbox,
        "slack",
        lambda s: s["tokens"].__setitem__(slack_token, s["tokens"].pop(slack_made["token"])),
    )
    page = httpx.post(f"{sandbox.url}/graph/_sandbox/pages", json={}, timeout=10).json()
    page_token = c.make("pasted Messenger page token", "EAAGcanary{core}" + filler(100))
    _plant(
        sandbox,
        "messenger",
        lambda s: s["pages"][page["page_id"]].__setitem__("token", page_token),
    )
    zoho = httpx.post(f"{sandbox.url}/zoho/_sandbox/clients", json={}, timeout=10).json()
    zoho_secret = c.make("pasted Zoho client secret", "canary-zoho-client-{core}")
    # A refresh token is hex by Zoho's shape: its random core is the canary.
    zoho_refresh = "1000." + core() + core() + "." + core() + core()
    c.add("pasted Zoho refresh token", zoho_refresh)

    def zoho_keys(state: dict[str, Any]) -> None:
        state["clients"][zoho["client_id"]]["client_secret"] = zoho_secret
        state["clients"][zoho["client_id"]]["refresh_token"] = zoho_refresh
        state["refresh_tokens"][zoho_refresh] = state["refresh_tokens"].pop(zoho["refresh_token"])

    _plant(sandbox, "zoho", zoho_keys)
    # Google: a service account's key file, issued by the sandbox (its private key is the
    # secret: searched whole and by a slice of its middle).
    service_account = httpx.post(
        f"{sandbox.url}/google/_sandbox/service_accounts", json={"name": "hub"}, timeout=10
    ).json()
    c.add("pasted Google service account private key", service_account["private_key"])
    c.add("pasted Google service account key id", service_account["private_key_id"])

    # First what fails: refused by the provider, or refused for its shape before any call.
    failing: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
        (
            "stripe",
            {"secret_key": c.make("refused Stripe key", "sk_test_51canary{core}" + filler(40))},
            None,
        ),
        (
            "stripe",
            {"secret_key": c.make("Stripe publishable key", "pk_test_51canary{core}" + filler(40))},
            None,
        ),
        (
            "stripe",
            {
                "secret_key": stripe_key,
                "webhook_signing_secret": c.make(
                    "malformed Stripe signing secret", "canary-not-whsec-{core}"
                ),
            },
            None,
        ),
        (
            "sendgrid",
            {"api_key": c.make("refused SendGrid key", "SG.canary{core}." + filler(43))},
            None,
        ),
        (
            "sendgrid",
            {"api_key": c.make("SendGrid key without SG.", "canary-sendgrid-{core}")},
            None,
        ),
        (
            "slack",
            {"bot_token": c.make("refused Slack token", "xoxb-canary{core}-" + filler(24))},
            None,
        ),
        (
            "slack",
            {"bot_token": c.make("Slack user token", "xoxp-canary{core}-" + filler(24))},
            None,
        ),
        (
            "messenger",
            {"page_access_token": c.make("refused page token", "EAAGcanary{core}" + filler(100))},
            None,
        ),
        (
            "zoho_books",
            {
                "client_id": zoho["client_id"],
                "client_secret": c.make("wrong Zoho client secret", "canary-zoho-wrong-{core}"),
                "refresh_token": zoho_refresh,
                "organization_id": zoho["organization_id"],
            },
            None,
        ),
        (
            "google_drive",
            {
                "service_account_json": c.make(
                    "malformed key file", '{{"private_key": "canary{core}"'
                )
            },
            None,
        ),
        (
            "webhooks",
            {"signing_secret": c.make("malformed webhook secret", "whsec_canary {core} !")},
            None,
        ),
        (
            "webhooks",
            {"signing_secret": whsec("refused")},
            {"url": "http://10.0.0.5/hooks"},
        ),
    ]
    c.add("webhook secret with a refused URL", failing[-1][1]["signing_secret"])
    for slug, creds, settings in failing:
        result = _connect(run, owner, slug, creds, settings)
        assert result is None or not result.ok, (slug, result)
    # "Save anyway, as inactive": the refused key is sealed and stored.
    saved = _connect(run, owner, "stripe", failing[0][1], save_inactive=True)
    assert saved is not None and saved.saved and not saved.ok

    # Then what works.
    webhook_secret, previous = whsec("signing"), whsec("previous")
    c.add("pasted webhook signing secret", webhook_secret)
    c.add("pasted previous webhook signing secret", previous)
    working: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
        (
            "stripe",
            {
                "secret_key": stripe_key,
                "webhook_signing_secret": c.make(
                    "pasted Stripe signing secret", "whsec_canary{core}"
                ),
            },
            None,
        ),
        ("sendgrid", {"api_key": sendgrid_key}, None),
        ("slack", {"bot_token": slack_token}, None),
        ("messenger", {"page_access_token": page_token}, {"page_id": page["page_id"]}),
        (
            "zoho_books",
            {
                "client_id": zoho["client_id"],
                "client_secret": zoho_secret,
                "refresh_token": zoho_refresh,
                "organization_id": zoho["organization_id"],
                "webhook_secret": c.make(
                    "pasted Zoho webhook secret", "canary-zoho-webhook-{core}"
                ),
            },
            None,
        ),
        ("google_drive", {"service_account_json": json.dumps(service_account)}, None),
        (
            "webhooks",
            {"signing_secret": webhook_secret, "previous_signing_secret": previous},
            {"url": f"{receiver.url}/hooks", "events": ["invoice.paid"]},
        ),
    ]
    for slug, creds, settings in working:
        result = _connect(run, owner, slug, creds, settings)
        assert result is not None and result.ok, (slug, result)
        tested = run.console_in_steps(
            owner.token,
            lambda e, a, slug=slug: oauth.test(  # type: ignore[misc]
                e,
                actor=a,
                provider_slug=slug,
                context=providers.provider_context(slug, e, workspace_id=a.workspace_id),
            ),
            f"manage page of {slug}: Test connection",
        )
        assert tested.ok and tested.get().ok, (slug, tested)
    run.console(
        owner.token,
        lambda s, a: connections.update_settings(
            s,
            actor=a,
            provider_slug="webhooks",
            settings={"events": ["invoice.paid", "invoice.voided"]},
            context=providers.provider_context("webhooks"),
        ),
        "manage page of webhooks: Save settings",
    )


# -- OAuth through the sidecar ----------------------------------------------------------------


def _oauth(run: Run, owner: Owner, provider: str) -> None:
    """The console's button, the sidecar's start hop (the binding cookie), the provider's
    consent, the sidecar's callback: as a browser goes through them."""
    start = run.console(
        owner.token,
        lambda s, a: oauth.begin(s, actor=a, provider_slug=provider, session_token=owner.token),
        f"manage page of {provider}: Connect with OAuth",
    ).get()
    parts = urlsplit(start)
    hop = run.call("GET", f"{parts.path}?{parts.query}")
    assert hop.status_code == 303, hop.text
    consent_url = hop.headers["location"]
    if provider == "stripe":
        page = httpx.get(consent_url, timeout=10)
        fields = dict(parse_qs(urlsplit(consent_url).query, keep_blank_values=True))
        form = {k: v[0] for k, v in fields.items()} | {"decision": "allow"}
        assert page.status_code == 200
        back = httpx.post(
            f"{run.sandbox.url}/stripe/connect/oauth/authorize/decision", data=form, timeout=10
        ).headers["location"]
    else:
        back = google_oauth.consent(consent_url)
    parts = urlsplit(back)
    assert f"{parts.scheme}://{parts.netloc}" == SIDECAR, back
    done = run.call("GET", f"{parts.path}?{parts.query}")
    assert done.status_code == 303 and "connected=1" in done.headers["location"], done.headers


# -- the sidecar's other routes ---------------------------------------------------------------


def _webhooks_in(run: Run, keys_shop: str) -> None:
    """Each secret the sidecar checks, sent right and sent wrong (a wrong one is a canary too:
    what a stranger sends must not be echoed or logged either)."""
    c = run.canaries
    with Session(run.engine) as session:
        workspace_id = session.scalars(
            select(Workspace.id).where(Workspace.slug == keys_shop)
        ).one()
        # The Standard Webhooks intake takes an integration's list of secrets; no console form
        # makes one yet, so it is stored as a connection would store it.
        generic = Integration(
            workspace_id=workspace_id,
            provider="generic",
            display_name="Generic",
            status=IntegrationStatus.ACTIVE,
        )
        session.add(generic)
        session.flush()
        generic_secret = c.add("generic intake signing secret", whsec("generic"))
        credentials.seal(generic, {"signing_secrets": [generic_secret]})
        session.commit()
        generic_id = generic.id
    now = int(time.time())
    forged = c.make("forged Stripe signature", "canary{core}")
    for path, secret, event_id in (
        (f"/webhooks/stripe/{keys_shop}", c.values["pasted Stripe signing secret"], "evt_ws"),
        ("/webhooks/stripe", c.values["setting platform_stripe_webhook_secret"], "evt_platform"),
    ):
        body = stripe_event(event_id, "customer.updated")
        statuses = [
            run.call(
                "POST",
                path,
                content=body,
                headers={"Stripe-Signature": f"t={now},v1={signature}"},
            ).status_code
            for signature in (stripe_v1(body, secret, now), forged)
        ]
        assert statuses[0] == 200 and statuses[1] >= 400, (path, statuses)
    zoho_body = json.dumps({"event_id": "zb-canary", "event_type": "invoice_paid"}).encode()
    statuses = [
        run.call(
            "POST",
            f"/webhooks/zoho/{keys_shop}",
            content=zoho_body,
            headers={"X-Zoho-Secret": sent},
        ).status_code
        for sent in (
            c.values["pasted Zoho webhook secret"],
            c.make("wrong Zoho webhook secret", "canary-zw-{core}"),
        )
    ]
    assert statuses == [200, 401], statuses
    generic_body = json.dumps({"type": "thing.happened", "id": "g1"}).encode()
    statuses = [
        run.call(
            "POST",
            f"/webhooks/generic/{generic_id}",
            content=generic_body,
            headers=sign(generic_body, "msg_canary", now, [signing]),
        ).status_code
        for signing in (generic_secret, c.add("forged generic secret", whsec("forged")))
    ]
    assert statuses[0] == 200 and statuses[1] >= 400, statuses
    statuses = [
        run.call("POST", "/outbox/run", headers={"X-Cron-Secret": sent}).status_code
        for sent in (
            c.values["setting cron_secret"],
            c.make("wrong cron secret", "canary-c-{core}"),
        )
    ]
    assert statuses == [200, 401], statuses
    statuses = [
        run.call("GET", "/metrics", headers={"Authorization": f"Bearer {sent}"}).status_code
        for sent in (
            c.values["setting metrics_token"],
            c.make("wrong metrics token", "canary-mt-{core}"),
        )
    ]
    assert statuses == [200, 401], statuses


def _drain(run: Run) -> None:
    runner = Runner(run.engine, "canary-worker", batch=50)
    for _ in range(20):
        if not runner.run_once().claimed:
            return


def _issued(run: Run) -> None:
    """What providers handed out during the run, now known: the OAuth tokens and webhook
    secrets stored for each integration, and the access tokens the sandbox issued."""
    known = set(run.canaries.values.values())
    with Session(run.engine) as session:
        for row in session.scalars(select(Integration)):
            if row.credentials_enc is None:
                continue
            for name, value in _secret_values(credentials.unseal(row)):
                if value not in known:
                    run.canaries.add(f"{row.provider} {name} (issued)", value)
                    known.add(value)
    for name, key in (
        ("google", "access_tokens"),
        ("google", "refresh_tokens"),
        ("zoho", "access_tokens"),
    ):
        for token in run.sandbox.ctx.store.read(name).get(key, {}):
            if token not in known:
                run.canaries.add(f"{name} {key[:-1]} {len(known)} (issued)", token)
                known.add(token)


def _secret_values(stored: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for name, value in stored.items():
        if isinstance(value, list):
            for i, item in enumerate(value):
                yield from _secret_values({f"{name}[{i}]": item})
        elif (
            isinstance(value, str)
            and any(w in name for w in ("secret", "token", "key", "private"))
            and "publishable" not in name
            and len(value) >= 12
        ):
            yield name, value


# -- the pages, as the console reads them -----------------------------------------------------


def _pages(run: Run, owner: Owner) -> None:
    from console.state.health import _rows_of_health
    from console.state.integrations import _read_managed, _tile
    from console.state.jobs import read_snapshot

    views = run.page(
        owner.token,
        lambda s, a: connection_views.view(s, a.workspace_id),
        f"hub of {owner.workspace_slug}",
    )
    run.shown.append(
        (f"tiles of {owner.workspace_slug}", [_tile(v, can_connect=True) for v in views])
    )
    for view in views:
        if view.state != "coming_soon":
            run.page(
                owner.token,
                lambda s, a, slug=view.slug: _read_managed(s, a, slug),
                f"manage page of {view.slug}",
            )  # type: ignore[misc]
    run.page(owner.token, _rows_of_health, f"health page of {owner.workspace_slug}")
    run.page(
        owner.token,
        lambda s, a: read_snapshot(s, a.workspace_id),
        f"jobs page of {owner.workspace_slug}",
    )


def _pickled_manage_state(run: Run) -> bytes:
    """The manage page's state as Reflex would pickle it after a failed paste: the refused key
    waiting for "Save anyway" (sealed), the last result shown, the session token."""
    import console.console  # noqa: F401 - registers every page's state, installs the sealing
    from console.state import sealing
    from console.state.integrations import ManageState

    state = ManageState(_reflex_internal_init=True)  # type: ignore[call-arg]
    state._pending_keys = sealing.seal_json(
        {"secret_key": run.canaries.values["refused Stripe key"]}
    )
    state.token = run.canaries.values["session token of keys-shop"]
    state.result = next(str(v) for where, v in reversed(run.shown) if "Test and save" in where)
    return state._serialize()


# -- the test ---------------------------------------------------------------------------------


@contextmanager
def _everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """Every record at DEBUG, the most a deployment can ask for (HUB_LOG_LEVEL=DEBUG), with the
    floors the product's logging sets on libraries under that level."""
    libraries = [logging.getLogger(n) for n in (*hub_logging.NOISY, *hub_logging.SECRETS_AT_DEBUG)]
    before = [logger.level for logger in libraries]
    caplog.set_level(logging.DEBUG)
    hub_logging.quiet_libraries("DEBUG")
    try:
        with structlog.testing.capture_logs() as structured:
            yield structured
    finally:
        for logger, level in zip(libraries, before, strict=True):
            logger.setLevel(level)


def _log_records(
    caplog: pytest.LogCaptureFixture, structured: list[dict[str, Any]], out: str
) -> list[tuple[str, object]]:
    formatter = logging.Formatter()
    records: list[tuple[str, object]] = [
        (
            f"{r.name} {r.levelname}",
            r.getMessage() + (formatter.formatException(r.exc_info) if r.exc_info else ""),
        )
        for r in caplog.records
    ]
    records += [(f"structlog {e.get('event')}", e) for e in structured]
    records += [(f"stdout/stderr line {i}", line) for i, line in enumerate(out.splitlines())]
    return records


@pytest.fixture
def canary_run(
    engine: Engine,
    db_url: str,
    make_sandbox: MakeSandbox,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> Iterator[Run]:
    canaries = Canaries()
    sandbox = make_sandbox()
    hub_env.update(setting_canaries(canaries))
    hub_env["HUB_PUBLIC_SIDECAR_URL"] = SIDECAR
    hub_env["HUB_PUBLIC_CONSOLE_URL"] = "http://console.test"
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    # The platform's canary key and Google client secret, known to the sandbox's providers.
    platform_key = canaries.values["setting platform_stripe_secret_key"]

    def platform(state: dict[str, Any]) -> None:
        ensure_seeded(state, sandbox.ctx)
        state["keys"][platform_key] = {"account": PLATFORM_ACCOUNT, "kind": "secret"}

    _plant(sandbox, "stripe", platform)
    with open_state(sandbox.ctx) as google:
        google["oauth_clients"][SANDBOX_CLIENT_ID]["client_secret"] = canaries.values[
            "setting google_client_secret"
        ]
    with TestClient(create_app(), raise_server_exceptions=False) as sidecar:
        yield Run(engine, sandbox, canaries, sidecar)


def test_no_secret_is_found_anywhere_after_every_flow_that_takes_one(
    canary_run: Run,
    receiver: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = canary_run
    with _everything_logged(caplog) as structured:
        keys_owner, oauth_owner = _owners(run)
        _keys(run, keys_owner, receiver)
        _oauth(run, oauth_owner, "stripe")
        _oauth(run, oauth_owner, "google_drive")
        for slug in ("stripe", "google_drive"):
            # OAuth tokens tested (and Google's renewed) the provider's way.
            tested = run.console_in_steps(
                oauth_owner.token,
                lambda e, a, slug=slug: oauth.test(  # type: ignore[misc]
                    e,
                    actor=a,
                    provider_slug=slug,
                    context=providers.provider_context(slug, e, workspace_id=a.workspace_id),
                ),
                f"manage page of {slug}: Test connection",
            )
            assert tested.get().ok, tested.get().message
        run.console_in_steps(
            oauth_owner.token,
            lambda e, a: plans.start_upgrade(
                e,
                actor=a,
                plan=Plan.BUSINESS,
                success_url="http://console.test/ok",
                cancel_url="http://console.test/no",
            ),
            "settings page: Upgrade",
        ).get()
        _webhooks_in(run, keys_owner.workspace_slug)
        _drain(run)
        for owner in (keys_owner, oauth_owner):
            _pages(run, owner)
        pickled = _pickled_manage_state(run)
        run.console_in_steps(
            oauth_owner.token,
            lambda e, a: oauth.disconnect(e, actor=a, provider_slug="google_drive"),
            "manage page of google_drive: Disconnect",
        ).get()
        _issued(run)
        out = capsys.readouterr()

    search = Search(run.canaries)
    search_all(search, "log records", _log_records(caplog, structured, out.out + out.err))
    search_database(search, run.engine)
    search_all(search, "console reads", run.shown)
    search.look("pickled states", "ManageState", pickled)
    search_all(search, "sidecar answers", run.answers)
    search_all(
        search,
        "requests to the webhook endpoint",
        [(r.path, [r.headers, r.body]) for r in receiver.received],
    )
    with capsys.disabled():
        print("\n" + search.summary())
    assert not search.hits, "\n".join(str(h) for h in search.hits)
    # The run did what it says: the secrets went in (sealed), the flows reached the providers.
    assert len(run.canaries.values) >= 40
    assert receiver.received, "no signed ping reached the webhook endpoint"
    with Session(run.engine) as session:
        sealed = {
            row.provider: credentials.unseal(row)
            for row in session.scalars(
                select(Integration)
                .join(Workspace)
                .where(Workspace.slug == keys_owner.workspace_slug)
            )
            if row.credentials_enc is not None
        }
        oauth_rows = session.scalars(
            select(Integration)
            .join(Workspace)
            .where(Workspace.slug == oauth_owner.workspace_slug, Integration.provider == "stripe")
        ).all()
    assert {
        "stripe",
        "sendgrid",
        "slack",
        "messenger",
        "zoho_books",
        "google_drive",
        "webhooks",
    } <= set(sealed)
    assert sealed["stripe"]["secret_key"] == run.canaries.values["pasted Stripe secret key"]
    assert (
        sealed["webhooks"]["signing_secret"] == run.canaries.values["pasted webhook signing secret"]
    )
    # Connected through Stripe Connect, its endpoint registered by the drained job.
    [connected] = oauth_rows
    assert connected.status is IntegrationStatus.ACTIVE
    assert credentials.unseal(connected)["webhook_signing_secret"].startswith("whsec_")


def test_the_search_finds_a_canary_left_in_a_log_or_a_column_whole_or_in_part(
    engine: Engine, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """The search above can fail: canaries written on purpose where a leak would put them are
    found, whole or cut (by their core, or a slice of an issued token's middle); a mask's last
    four characters are not."""
    canaries = Canaries()
    key = canaries.make("pasted key", "sk_test_51canary{core}" + filler(40))
    token = canaries.add("issued token", "ya29." + filler(100))
    hook = canaries.make("webhook secret", "whsec_canary{core}")
    with _everything_logged(caplog) as structured:
        structlog.get_logger("sidecar").warning("webhook refused", secret=hook)
        # Through a floored SDK logger at INFO: the floor lets it through, the search does not.
        logging.getLogger("stripe").info("body=%s", token[20:90])
        print(f"Invalid API Key provided: {key[:36]}…")  # the front only, its core included
        print(f"Invalid API Key provided: ••••{key[-4:]}")  # a mask: not a hit
    with Session(engine) as session:
        workspace = factories.workspace(session)
        session.add(
            IntegrationLog(
                workspace_id=workspace.id,
                provider="stripe",
                operation="test_connection",
                outcome="rejected",
                error=f"Stripe refused {key}",
                at=utcnow(),
            )
        )
        session.add(
            AuditLog(
                workspace_id=workspace.id,
                actor="operator:1",
                action="integration.connect",
                target="integration:google_drive",
                details={"tokens": {"access_token": token}},
            )
        )
        session.commit()
    out = capsys.readouterr()

    search = Search(canaries)
    search_all(search, "log records", _log_records(caplog, structured, out.out + out.err))
    search_database(search, engine)
    places = {(hit.label, hit.place) for hit in search.hits}
    assert ("webhook secret", "log records: structlog webhook refused") in places
    assert ("issued token", "log records: stripe INFO") in places
    assert ("pasted key", "log records: stdout/stderr line 0") in places
    assert ("pasted key", "database cells: integration_logs.error#0") in places
    assert ("issued token", "database cells: audit_log.details#0") in places
    # The masked line (line 1) is not a hit; nothing else is.
    assert len(search.hits) == 5, [str(h) for h in search.hits]
