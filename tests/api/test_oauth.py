"""OAuth end to end (Stripe Connect, Google): authorize URL with signed state, the sandbox's
consent page "clicked" with httpx, the sidecar callback storing the tokens sealed, and disconnect
revoking."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import backend.sandbox.google
import backend.sandbox.stripe
from backend.api.app import create_app
from backend.config import get_settings
from backend.connections import credentials, oauth, rows, views
from backend.platform.actors import Actor
from backend.platform.errors import PlanRequired
from backend.security import tokens
from models import AuditLog, IntegrationStatus, Plan, Role
from tests import factories
from tests.support import google_oauth, oauth_flow
from tests.support.hub_env import apply
from tests.support.sandbox_fixtures import MakeSandbox
from tests.support.steps import in_steps


@pytest.fixture
def env(
    engine: Engine,
    db_url: str,
    make_sandbox: MakeSandbox,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> tuple[Engine, str]:
    sandbox = make_sandbox(providers=[backend.sandbox.stripe])
    hub_env["HUB_PUBLIC_CONSOLE_URL"] = "http://console.test"
    hub_env["HUB_PUBLIC_SIDECAR_URL"] = "http://sidecar.test"
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    return engine, sandbox.url


def _owner(engine: Engine, plan: Plan = Plan.PRO) -> Actor:
    with Session(engine) as session:
        ws = factories.workspace(session, plan=plan)
        op = factories.member(session, ws, email="owner@shop.test", role=Role.OWNER)
        session.commit()
        return Actor(operator_id=op.id, workspace_id=ws.id, role=Role.OWNER)


def _consent(authorize_url: str, decision: str = "allow") -> str:
    """Open Stripe's consent page and press a button; returns where it redirects."""
    page = httpx.get(authorize_url, timeout=10)
    assert page.status_code == 200 and "Connect" in page.text
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
    import html

    fields = {k: html.unescape(v) for k, v in fields.items()}
    fields["decision"] = decision
    base = f"{urlsplit(authorize_url).scheme}://{urlsplit(authorize_url).netloc}"
    answer = httpx.post(f"{base}/stripe/connect/oauth/authorize/decision", data=fields, timeout=10)
    assert answer.status_code == 303
    return answer.headers["location"]


def _callback(client: TestClient, location: str) -> httpx.Response:
    """The provider's redirect, followed by the browser that started the flow (its binding
    cookie on the sidecar's origin)."""
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}" == "http://sidecar.test"
    state = parse_qs(parts.query).get("state", [""])[0]
    try:
        for name, value in oauth_flow.cookies_for(state).items():
            client.cookies.set(name, value)
    except tokens.TokenError:
        pass  # a tampered state: the route says why
    answer: httpx.Response = client.get(f"{parts.path}?{parts.query}", follow_redirects=False)
    return answer


def test_connect_with_stripe_end_to_end(env: tuple[Engine, str]) -> None:
    engine, sandbox_url = env
    actor = _owner(engine)
    with Session(engine) as session:
        url = oauth_flow.authorize(session, actor, "stripe")
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{sandbox_url}/stripe/connect/oauth/authorize")
    assert query["client_id"] == [get_settings().platform_stripe_client_id]
    assert query["redirect_uri"] == ["http://sidecar.test/oauth/stripe/callback"]
    location = _consent(url)
    with TestClient(create_app()) as client:
        answer = _callback(client, location)
    assert answer.status_code == 303
    assert answer.headers["location"] == "http://console.test/integrations/stripe?connected=1"
    with Session(engine) as session:
        row = rows.find(session, workspace_id=actor.workspace_id, provider_slug="stripe")
        assert row is not None and row.status is IntegrationStatus.ACTIVE
        stored = credentials.unseal(row)
        assert stored["secret_key"].startswith("sk_") and stored["stripe_user_id"].startswith(
            "acct_"
        )
        assert stored["secret_key"].encode() not in (row.credentials_enc or b"")
        entry = session.scalars(
            select(AuditLog).where(AuditLog.action == "integration.connect")
        ).one()
        assert stored["secret_key"] not in str(entry.details) and entry.details["method"] == "oauth"
        # Disconnect deauthorizes at Stripe: the account's key stops working.
        in_steps(
            session, lambda engine: oauth.disconnect(engine, actor=actor, provider_slug="stripe")
        )
        audit_row = session.scalars(
            select(AuditLog).where(AuditLog.action == "integration.disconnect")
        ).one()
        assert audit_row.details == {"revoked": "ok"}
    revoked = httpx.get(
        f"{sandbox_url}/stripe/v1/account",
        headers={"Authorization": f"Bearer {stored['secret_key']}"},
        timeout=10,
    )
    assert revoked.status_code == 401


def test_denied_consent_returns_to_the_console_with_an_error(env: tuple[Engine, str]) -> None:
    engine, _ = env
    actor = _owner(engine)
    with Session(engine) as session:
        url = oauth_flow.authorize(session, actor, "stripe")
    with TestClient(create_app()) as client:
        answer = _callback(client, _consent(url, decision="deny"))
    location = answer.headers["location"]
    assert location.startswith("http://console.test/integrations/stripe?error=")
    assert "cancelled" in parse_qs(urlsplit(location).query)["error"][0]


def test_tampered_state_is_refused(env: tuple[Engine, str]) -> None:
    engine, _ = env
    actor = _owner(engine)
    with Session(engine) as session:
        url = oauth_flow.authorize(session, actor, "stripe")
    location = _consent(url)
    tampered = location.replace("state=", "state=x")
    with TestClient(create_app()) as client:
        answer = _callback(client, tampered)
    error = parse_qs(urlsplit(answer.headers["location"]).query)["error"][0]
    assert "not valid" in error
    with Session(engine) as session:
        assert views.list_connections(session, workspace_id=actor.workspace_id) == []


def test_expired_state_is_refused() -> None:
    state = tokens.oauth_state("s3cret", workspace_id=1, operator_id=2, provider="stripe")
    time.sleep(1.1)
    with pytest.raises(tokens.TokenExpired, match="expired"):
        tokens.read_oauth_state("s3cret", state, provider="stripe", max_age=0)
    with pytest.raises(tokens.TokenInvalid, match="started for stripe"):
        tokens.read_oauth_state("s3cret", state, provider="google_drive")
    assert tokens.read_oauth_state("s3cret", state, provider="stripe") == tokens.OAuthState(
        1, 2, "stripe"
    )


def test_free_plan_cannot_start_stripe_connect(env: tuple[Engine, str]) -> None:
    engine, _ = env
    actor = _owner(engine, plan=Plan.FREE)
    with Session(engine) as session, pytest.raises(PlanRequired, match="Pro plan"):
        oauth_flow.authorize(session, actor, "stripe")


# -- Google (Drive) ---------------------------------------------------------------------------


@pytest.fixture
def google_env(
    engine: Engine,
    db_url: str,
    make_sandbox: MakeSandbox,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> tuple[Engine, str]:
    sandbox = make_sandbox(providers=[backend.sandbox.google])
    hub_env["HUB_PUBLIC_CONSOLE_URL"] = "http://console.test"
    hub_env["HUB_PUBLIC_SIDECAR_URL"] = "http://sidecar.test"
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    return engine, sandbox.url


def test_google_callback_stores_the_connection_and_returns_to_the_manage_page(
    google_env: tuple[Engine, str],
) -> None:
    engine, _ = google_env
    actor = _owner(engine)
    with Session(engine) as session:
        url = oauth_flow.authorize(session, actor, "google_drive")
    location = google_oauth.consent(url)
    assert location.startswith("http://sidecar.test/oauth/google/callback?")
    with TestClient(create_app()) as client:
        answer = _callback(client, location)
    assert answer.status_code == 303
    assert answer.headers["location"] == (
        "http://console.test/integrations/google_drive?connected=1"
    )
    with Session(engine) as session:
        row = rows.find(session, workspace_id=actor.workspace_id, provider_slug="google_drive")
        assert row is not None and row.status is IntegrationStatus.ACTIVE
        assert credentials.unseal(row)["method"] == "oauth"


def test_google_callback_refuses_a_tampered_state_without_logging_secrets(
    google_env: tuple[Engine, str], capsys: pytest.CaptureFixture[str]
) -> None:
    engine, _ = google_env
    actor = _owner(engine)
    with Session(engine) as session:
        url = oauth_flow.authorize(session, actor, "google_drive")
    location = google_oauth.consent(url)
    sent = google_oauth.query_of(location)
    with TestClient(create_app()) as client:
        answer = _callback(client, location.replace("state=", "state=x"))
    target = answer.headers["location"]
    assert target.startswith("http://console.test/integrations/google_drive?error=")
    assert "not valid" in google_oauth.query_of(target)["error"]
    logged = capsys.readouterr()
    assert "oauth callback refused" in logged.out + logged.err
    assert sent["code"] not in logged.out + logged.err
    assert sent["state"] not in logged.out + logged.err
    with Session(engine) as session:
        assert views.list_connections(session, workspace_id=actor.workspace_id) == []


def test_google_callback_after_deny_says_it_was_cancelled(
    google_env: tuple[Engine, str],
) -> None:
    engine, _ = google_env
    actor = _owner(engine)
    with Session(engine) as session:
        url = oauth_flow.authorize(session, actor, "google_drive")
    with TestClient(create_app()) as client:
        answer = _callback(client, google_oauth.consent(url, decision="deny"))
    error = google_oauth.query_of(answer.headers["location"])["error"]
    assert error == "You cancelled connecting Google Drive."


# -- one use, one browser ----------------------------------------------------------------------


def _start_in_browser(client: TestClient, engine: Engine, actor: Actor) -> str:
    """The console's button, then the sidecar's start hop in ``client`` (the owner's browser):
    where the hop sends the browser (the provider's consent page)."""
    with Session(engine) as session:
        token = oauth_flow.console_session(session, actor)
        start = oauth.begin(session, actor=actor, provider_slug="stripe", session_token=token)
        session.commit()
    hop = client.get(urlsplit(start).path + "?" + urlsplit(start).query, follow_redirects=False)
    assert hop.status_code == 303
    cookie = hop.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/oauth/" in cookie
    # A copied start link binds nothing: the flow is already this browser's.
    again = client.get(urlsplit(start).path + "?" + urlsplit(start).query, follow_redirects=False)
    assert again.status_code == 400 and "already opened" in again.text
    return hop.headers["location"]


def test_a_callback_used_twice_gets_a_400_page_and_connects_nothing_more(
    env: tuple[Engine, str],
) -> None:
    engine, _ = env
    actor = _owner(engine)
    with TestClient(create_app()) as browser:
        location = _consent(_start_in_browser(browser, engine, actor))
        parts = urlsplit(location)
        first = browser.get(f"{parts.path}?{parts.query}", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"].endswith("connected=1")
        second = browser.get(f"{parts.path}?{parts.query}", follow_redirects=False)
    assert second.status_code == 400
    assert "text/html" in second.headers["content-type"]
    assert "already used" in second.text and "Start Connect again from the console" in second.text


def test_a_state_brought_back_by_another_browser_gets_a_400_page(
    env: tuple[Engine, str],
) -> None:
    """An attacker who obtained the owner's state finishes the flow with their own code, in
    their own browser: refused, and the owner's workspace stays unconnected."""
    engine, _ = env
    actor = _owner(engine)
    with TestClient(create_app()) as owner_browser:
        owner_location = _consent(_start_in_browser(owner_browser, engine, actor))
    stolen_state = parse_qs(urlsplit(owner_location).query)["state"][0]
    attacker_code = parse_qs(urlsplit(owner_location).query)["code"][0]
    with TestClient(create_app()) as attacker:
        answer = attacker.get(
            "/oauth/stripe/callback",
            params={"code": attacker_code, "state": stolen_state},
            follow_redirects=False,
        )
    assert answer.status_code == 400
    assert "another browser" in answer.text and "Start Connect again" in answer.text
    with Session(engine) as session:
        assert views.list_connections(session, workspace_id=actor.workspace_id) == []
