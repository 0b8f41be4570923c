"""Connect with Google (Drive) through the sandbox's consent screen: the authorize URL and its
signed state, the code exchange storing sealed tokens, refused states, Test connection renewing
an expired token, and disconnect revoking the grant at Google."""

from __future__ import annotations

import datetime as dt
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import backend.sandbox.google
from backend.config import get_settings
from backend.connections import credentials, facts, google_tokens, oauth, providers, rows, views
from backend.connections import service as connections
from backend.integrations.google_drive import DRIVE_SCOPE
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, PermissionDenied, PlanRequired
from backend.security import tokens
from models import AuditLog, Integration, IntegrationStatus, Plan, Role
from tests import factories
from tests.support import oauth_flow
from tests.support.google_oauth import (
    consent,
    drive_accepts,
    query_of,
    set_refresh_token_ttl,
    set_token_ttl,
)
from tests.support.hub_env import apply
from tests.support.sandbox_fixtures import MakeSandbox
from tests.support.steps import in_steps

GOOGLE = "google_drive"


@pytest.fixture
def sandbox_url(
    engine: Engine,
    db_url: str,
    make_sandbox: MakeSandbox,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> str:
    sandbox = make_sandbox(providers=[backend.sandbox.google])
    hub_env["HUB_PUBLIC_CONSOLE_URL"] = "http://console.test"
    hub_env["HUB_PUBLIC_SIDECAR_URL"] = "http://sidecar.test"
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    return sandbox.url


def _owner(session: Session, plan: Plan = Plan.PRO, role: Role = Role.OWNER) -> Actor:
    ws = factories.workspace(session, plan=plan)
    op = factories.member(session, ws, email="owner@shop.test", role=role)
    session.commit()
    return Actor(operator_id=op.id, workspace_id=ws.id, role=role)


def _connect(session: Session, actor: Actor) -> views.ConnectResult:
    """Owner presses Connect with Google, allows on Google's page; the callback's work."""
    back = query_of(consent(oauth_flow.authorize(session, actor, "google_drive")))
    result = oauth_flow.complete(session, "google_drive", code=back["code"], state=back["state"])
    session.commit()
    return result


def _row(session: Session, actor: Actor) -> Integration:
    row = rows.find(session, workspace_id=actor.workspace_id, provider_slug=GOOGLE)
    assert row is not None
    return row


def test_authorize_url_asks_google_for_offline_drive_access_with_a_signed_state(
    session: Session, sandbox_url: str
) -> None:
    actor = _owner(session)
    url = oauth_flow.authorize(session, actor, "google_drive")
    assert url.startswith(f"{sandbox_url}/google/_pages/o/oauth2/auth?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["client_id"] == get_settings().google_client_id
    assert query["redirect_uri"] == "http://sidecar.test/oauth/google/callback"
    assert (query["scope"], query["access_type"], query["prompt"]) == (
        DRIVE_SCOPE,
        "offline",
        "consent",
    )
    state = tokens.read_oauth_state(
        get_settings().secret_key.get_secret_value(), query["state"], provider=GOOGLE
    )
    assert (state.workspace_id, state.operator_id) == (actor.workspace_id, actor.operator_id)


def test_good_flow_stores_sealed_tokens_and_tests_them(session: Session, sandbox_url: str) -> None:
    actor = _owner(session)
    result = _connect(session, actor)
    assert result.ok and result.saved and result.status is IntegrationStatus.ACTIVE
    assert "Google Drive" in result.message
    row = _row(session, actor)
    assert row.status is IntegrationStatus.ACTIVE and row.last_error is None
    stored = credentials.unseal(row)
    assert stored["method"] == "oauth" and stored["scope"] == DRIVE_SCOPE
    assert stored["access_token"].startswith("ya29.") and stored["refresh_token"].startswith("1//")
    expiry = dt.datetime.fromisoformat(stored["expiry"])
    assert dt.timedelta(minutes=55) < expiry - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=1)
    # A published app's grant lasts until revoked: Google says no end, none is kept.
    assert google_tokens.google_refresh_expiry(session, actor.workspace_id) is None
    for secret in (stored["access_token"], stored["refresh_token"]):
        assert secret.encode() not in (row.credentials_enc or b"")
    entry = session.scalars(select(AuditLog).where(AuditLog.action == "integration.connect")).one()
    assert entry.details["method"] == "oauth" and entry.details["test"] == "ok"
    assert stored["refresh_token"] not in str(entry.details)
    assert stored["access_token"] not in str(entry.details)
    assert drive_accepts(sandbox_url, stored["access_token"])
    # Where the callback sends the browser afterwards.
    assert oauth.console_url(GOOGLE, connected="1") == (
        "http://console.test/integrations/google_drive?connected=1"
    )


def test_tampered_state_is_refused_and_nothing_is_stored(
    session: Session, sandbox_url: str
) -> None:
    actor = _owner(session)
    back = query_of(consent(oauth_flow.authorize(session, actor, "google_drive")))
    with pytest.raises(InvalidInput, match="not valid"):
        oauth_flow.complete(session, "google_drive", code=back["code"], state="x" + back["state"])
    assert rows.find(session, workspace_id=actor.workspace_id, provider_slug=GOOGLE) is None


def test_state_made_for_stripe_is_refused_on_googles_callback(
    session: Session, sandbox_url: str
) -> None:
    actor = _owner(session)
    back = query_of(consent(oauth_flow.authorize(session, actor, "google_drive")))
    stripe_state = tokens.oauth_state(
        get_settings().secret_key.get_secret_value(),
        workspace_id=actor.workspace_id,
        operator_id=actor.operator_id,
        provider="stripe",
    )
    with pytest.raises(InvalidInput, match="started for stripe"):
        oauth_flow.complete(session, "google_drive", code=back["code"], state=stripe_state)


class _ElevenMinutesAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 660


def test_expired_state_is_refused(session: Session, sandbox_url: str) -> None:
    actor = _owner(session)
    back = query_of(consent(oauth_flow.authorize(session, actor, "google_drive")))
    old_state = URLSafeTimedSerializer(
        get_settings().secret_key.get_secret_value(),
        salt=tokens.OAUTH_STATE_SALT,
        signer=_ElevenMinutesAgo,
    ).dumps({"w": actor.workspace_id, "o": actor.operator_id, "p": GOOGLE})
    with pytest.raises(InvalidInput, match="expired"):
        oauth_flow.complete(session, "google_drive", code=back["code"], state=old_state)
    assert rows.find(session, workspace_id=actor.workspace_id, provider_slug=GOOGLE) is None


def test_only_an_owner_on_a_paid_plan_starts_connect_with_google(
    session: Session, sandbox_url: str
) -> None:
    free = _owner(session, plan=Plan.FREE)
    with pytest.raises(PlanRequired, match="Pro plan"):
        oauth_flow.authorize(session, free, "google_drive")
    admin = Actor(operator_id=free.operator_id, workspace_id=free.workspace_id, role=Role.ADMIN)
    with pytest.raises(PermissionDenied):
        oauth_flow.authorize(session, admin, "google_drive")


def test_a_grant_google_limits_in_time_has_its_end_stored_unsealed(
    session: Session, sandbox_url: str
) -> None:
    """Google's answer for an app in "testing" says the refresh token lasts 7 days: the
    callback keeps when it ends beside the settings, for the alert rule and the Health page."""
    set_refresh_token_ttl(sandbox_url, 7 * 24 * 3600)
    actor = _owner(session)
    before = dt.datetime.now(dt.UTC)
    assert _connect(session, actor).ok
    row = _row(session, actor)
    ends = google_tokens.google_refresh_expiry(session, actor.workspace_id)
    assert ends is not None
    assert before + dt.timedelta(days=7) - dt.timedelta(seconds=5) <= ends
    assert ends <= dt.datetime.now(dt.UTC) + dt.timedelta(days=7)
    assert row.settings[facts.KEY] == {google_tokens.REFRESH_EXPIRY: ends.isoformat()}
    assert google_tokens.REFRESH_EXPIRY not in credentials.unseal(row)
    # The owner's settings are theirs to change; the fact stays.
    connections.update_settings(
        session,
        actor=actor,
        provider_slug=GOOGLE,
        settings={"root_folder_name": "Shows"},
        context=providers.provider_context(GOOGLE),
    )
    session.commit()
    assert _row(session, actor).settings["root_folder_name"] == "Shows"
    assert google_tokens.google_refresh_expiry(session, actor.workspace_id) == ends
    # A reconnect once the app is published: the new grant has no end.
    set_refresh_token_ttl(sandbox_url, None)
    assert _connect(session, actor).ok
    session.expire_all()
    assert google_tokens.google_refresh_expiry(session, actor.workspace_id) is None
    assert _row(session, actor).settings == {"root_folder_name": "Shows"}


def test_a_disconnect_forgets_when_the_grant_would_have_ended(
    session: Session, sandbox_url: str
) -> None:
    set_refresh_token_ttl(sandbox_url, 7 * 24 * 3600)
    actor = _owner(session)
    assert _connect(session, actor).ok
    assert google_tokens.google_refresh_expiry(session, actor.workspace_id) is not None
    in_steps(session, lambda engine: oauth.disconnect(engine, actor=actor, provider_slug=GOOGLE))
    session.expire_all()
    assert google_tokens.google_refresh_expiry(session, actor.workspace_id) is None


def test_test_connection_renews_an_expired_access_token_and_keeps_it(
    session: Session, sandbox_url: str
) -> None:
    set_token_ttl(sandbox_url, 60)  # google-auth renews tokens within ~4 minutes of expiry
    actor = _owner(session)
    assert _connect(session, actor).ok
    before = credentials.unseal(_row(session, actor))
    set_token_ttl(sandbox_url, 3599)
    result = in_steps(
        session,
        lambda engine: oauth.test(
            engine,
            actor=actor,
            provider_slug=GOOGLE,
            context=providers.provider_context(GOOGLE, engine, workspace_id=actor.workspace_id),
        ),
    )
    assert result.ok, result.message
    after = credentials.unseal(_row(session, actor))
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] == before["refresh_token"]
    assert google_tokens.expiry_of(after) > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=55)  # type: ignore[operator]
    assert drive_accepts(sandbox_url, after["access_token"])


def test_disconnect_revokes_the_grant_at_google(session: Session, sandbox_url: str) -> None:
    actor = _owner(session)
    assert _connect(session, actor).ok
    stored = credentials.unseal(_row(session, actor))
    row = in_steps(
        session, lambda engine: oauth.disconnect(engine, actor=actor, provider_slug=GOOGLE)
    )
    assert row.status is IntegrationStatus.INACTIVE and row.credentials_enc is None
    entry = session.scalars(
        select(AuditLog).where(AuditLog.action == "integration.disconnect")
    ).one()
    assert entry.details == {"revoked": "ok"}
    assert not drive_accepts(sandbox_url, stored["access_token"])
    refused = httpx.post(
        f"{sandbox_url}/google/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": stored["refresh_token"],
            "client_id": get_settings().google_client_id,
            "client_secret": get_settings().google_client_secret.get_secret_value(),
        },
        timeout=10,
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_disconnecting_a_pasted_key_has_nothing_to_revoke(
    session: Session, sandbox_url: str
) -> None:
    actor = _owner(session)
    row = Integration(
        workspace_id=actor.workspace_id,
        provider=GOOGLE,
        display_name="Google Drive",
        status=IntegrationStatus.ACTIVE,
    )
    session.add(row)
    session.flush()
    credentials.seal(row, {"service_account_json": '{"type": "service_account"}'})
    assert oauth.revoker_for(row) is None
    in_steps(session, lambda engine: oauth.disconnect(engine, actor=actor, provider_slug=GOOGLE))
    entry = session.scalars(
        select(AuditLog).where(AuditLog.action == "integration.disconnect")
    ).one()
    assert entry.details == {"revoked": "not_applicable"}
