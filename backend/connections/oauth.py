"""OAuth connections: Stripe Connect and Google (for Drive). The owner's browser goes through
the sidecar's start hop (which binds the flow to it: oauth_nonces) to the provider with a
signed ``state`` (workspace, operator, provider, a one-time nonce; 10 minutes); the provider
sends the browser back to the sidecar's callback, which verifies the state and consumes the
flow (once, same browser), exchanges the code, and stores
the tokens sealed like pasted keys (tier-checked and tested the same way). Disconnecting
revokes the grant at the provider. The exchange, the test and the revocation run with no
transaction open (docs/security/transactions.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.connections import (
    catalog,
    credentials,
    google_tokens,
    oauth_nonces,
    providers,
    rows,
    views,
)
from backend.connections import service as connections
from backend.db import session_scope
from backend.integrations import call_log, google_drive
from backend.integrations.base import ProviderContext
from backend.integrations.errors import ProviderError
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, PermissionDenied, ServiceError
from backend.security import tokens
from backend.security.crypto import CryptoError
from models import Integration, Membership, Operator

STRIPE = "stripe"
GOOGLE = google_tokens.PROVIDER
# The button on a provider's manage page, in the provider's own words.
_BUTTONS = {STRIPE: "Connect with Stripe", GOOGLE: "Connect with Google"}


def redirect_uri(provider: str) -> str:
    """The sidecar's callback for ``provider``, as registered with the provider."""
    path = "google" if provider == GOOGLE else provider
    return f"{get_settings().public_sidecar_url.rstrip('/')}/oauth/{path}/callback"


def stripe_redirect_uri() -> str:
    return redirect_uri(STRIPE)


def google_redirect_uri() -> str:
    return redirect_uri(GOOGLE)


def button_label(provider: str) -> str:
    """What "connect through OAuth" says for ``provider``; "" when it has no OAuth flow here."""
    return _BUTTONS.get(provider, "")


def console_url(provider: str, **query: str) -> str:
    """Where the browser lands after a callback: the provider's manage page in the console."""
    base = f"{get_settings().public_console_url.rstrip('/')}/integrations/{provider}"
    return f"{base}?{urlencode(query)}" if query else base


def start_url(provider: str, nonce: str) -> str:
    """The sidecar's start hop for a flow: it binds the flow to the browser, then sends it on
    to the provider."""
    path = "google" if provider == GOOGLE else provider
    base = get_settings().public_sidecar_url.rstrip("/")
    return f"{base}/oauth/{path}/start?{urlencode({'nonce': nonce})}"


def begin(session: Session, *, actor: Actor, provider_slug: str, session_token: str) -> str:
    """The manage page's OAuth button: owner only, tier-checked before they leave; a one-time
    flow for this console session. Where to send the browser (the sidecar's start hop)."""
    if provider_slug not in _BUTTONS:
        raise InvalidInput(f"{provider_slug} does not connect through OAuth here; paste its keys.")
    actor.require_owner("connect integrations")
    rows.check_tier(
        session,
        workspace_id=actor.workspace_id,
        info=catalog.provider(provider_slug).info,
    )
    nonce = oauth_nonces.begin(
        session, actor=actor, provider=provider_slug, session_token=session_token
    )
    return start_url(provider_slug, nonce)


def open_flow(session: Session, *, provider: str, nonce: str) -> tuple[str, str]:
    """The start hop: bind the flow to this browser; (the provider's consent URL with our
    signed state, the binding for the browser's cookie). FlowRefused when it cannot start."""
    row, binding = oauth_nonces.bind(session, nonce=nonce, provider=provider)
    state = tokens.oauth_state(
        get_settings().secret_key.get_secret_value(),
        workspace_id=row.workspace_id,
        operator_id=row.operator_id,
        provider=provider,
        nonce=nonce,
    )
    if provider == STRIPE:
        settings = get_settings()
        url = providers.platform_stripe().connect_authorize_url(
            client_id=settings.platform_stripe_client_id,
            redirect_uri=stripe_redirect_uri(),
            state=state,
        )
    else:
        url = google_drive.authorize_url(
            google_tokens.client().client_id,
            redirect_uri=google_redirect_uri(),
            state=state,
            context=providers.provider_context(GOOGLE),
        )
    return url, binding


def start_hop(engine: Engine, *, provider: str, nonce: str) -> tuple[str, str]:
    """``open_flow`` in a transaction of its own (the sidecar's start route)."""
    with session_scope(engine) as session:
        return open_flow(session, provider=provider, nonce=nonce)


def verify_callback(
    session: Session, *, state: str, provider: str, cookies: Mapping[str, str]
) -> Actor:
    """The owner who started the flow, from a state that is ours, fresh, for ``provider``,
    brought back by the browser that started it, the first time. Consumes the flow."""
    try:
        verified = tokens.read_oauth_state(
            get_settings().secret_key.get_secret_value(), state, provider=provider
        )
    except tokens.TokenError as exc:
        raise InvalidInput(str(exc)) from None
    oauth_nonces.consume(session, state=verified, cookies=cookies)
    actor = actor_from_state(session, verified)
    actor.require_owner("connect integrations")
    return actor


def actor_from_state(session: Session, state: tokens.OAuthState) -> Actor:
    """The operator who started the flow, with their role now (it may have changed since)."""
    row = session.execute(
        select(Membership, Operator)
        .join(Operator, Operator.id == Membership.operator_id)
        .where(
            Membership.workspace_id == state.workspace_id,
            Membership.operator_id == state.operator_id,
        )
    ).first()
    if row is None:
        raise PermissionDenied("You are no longer a member of this workspace.")
    membership, operator = row
    return Actor(
        operator_id=operator.id,
        workspace_id=membership.workspace_id,
        role=membership.role,
        email=operator.email,
        name=operator.name,
    )


def complete_stripe(engine: Engine, *, actor: Actor, code: str) -> views.ConnectResult:
    """The callback's work once the flow is verified: exchange the code (no transaction open),
    store the account's tokens sealed."""
    if not code:
        raise InvalidInput("Stripe did not send an authorization code. Try connecting again.")
    try:
        granted = providers.platform_stripe().connect_token(code=code)
    except ProviderError as exc:
        raise ServiceError(f"Stripe did not accept the connection: {exc}") from None
    secrets: dict[str, Any] = {
        "secret_key": granted["access_token"],
        "stripe_user_id": granted["stripe_user_id"],
        "refresh_token": granted["refresh_token"],
        "method": "oauth",
    }
    return connections.store_tokens(
        engine,
        actor=actor,
        provider_slug=STRIPE,
        secrets=secrets,
        context=providers.provider_context(STRIPE, engine, workspace_id=actor.workspace_id),
    )


def _callback(
    engine: Engine,
    *,
    provider: str,
    state: str,
    cookies: Mapping[str, str],
    complete: Callable[[Engine, Actor], views.ConnectResult],
) -> views.ConnectResult:
    # The flow is consumed in a transaction of its own, committed before the code is
    # exchanged: a second use is refused even when the first one's exchange failed. The
    # exchange and the test then run with no transaction open, each write in one of its own.
    with session_scope(engine) as session:
        actor = verify_callback(session, state=state, provider=provider, cookies=cookies)
    # The exchange and the test are the workspace's calls (the Health page counts them).
    with call_log.scope(workspace_id=actor.workspace_id):
        return complete(engine, actor)


def stripe_callback(
    engine: Engine, *, code: str, state: str, cookies: Mapping[str, str]
) -> views.ConnectResult:
    """The sidecar's Stripe callback: verify and consume the flow, then ``complete_stripe``
    (stored and committed when it returns; a ServiceError stores nothing)."""
    return _callback(
        engine,
        provider=STRIPE,
        state=state,
        cookies=cookies,
        complete=lambda s, a: complete_stripe(s, actor=a, code=code),
    )


def complete_google(engine: Engine, *, actor: Actor, code: str) -> views.ConnectResult:
    """Google's callback once the flow is verified: exchange the code (no transaction open),
    store the tokens sealed (and tested)."""
    if not code:
        raise InvalidInput("Google did not send an authorization code. Try connecting again.")
    context = providers.provider_context(GOOGLE, engine, workspace_id=actor.workspace_id)
    try:
        granted = google_drive.exchange_code(
            google_tokens.client(), code=code, redirect_uri=google_redirect_uri(), context=context
        )
    except ProviderError as exc:
        raise ServiceError(f"Google did not accept the connection: {exc}") from None
    if not granted.refresh_token:
        raise ServiceError(
            "Google sent no refresh token, so the connection would stop working within the "
            "hour. Connect again and allow offline access."
        )
    return connections.store_tokens(
        engine,
        actor=actor,
        provider_slug=GOOGLE,
        secrets=google_tokens.sealed(granted),
        context=context,
        tester=google_tokens.tester(context),
        learnt=google_tokens.learnt(granted),
    )


def google_callback(
    engine: Engine, *, code: str, state: str, cookies: Mapping[str, str]
) -> views.ConnectResult:
    """The sidecar's Google callback, as ``stripe_callback``."""
    return _callback(
        engine,
        provider=GOOGLE,
        state=state,
        cookies=cookies,
        complete=lambda s, a: complete_google(s, actor=a, code=code),
    )


def _oauth_secrets(integration: Integration) -> dict[str, Any]:
    try:
        secrets = credentials.unseal(integration)
    except CryptoError:
        return {}
    return secrets if secrets.get("method") == "oauth" else {}


def tester_for(integration: Integration, context: ProviderContext) -> connections.Tester | None:
    """How to test this integration when its tokens are not what the key form describes
    (Google OAuth); None: the provider's own test."""
    if integration.provider == GOOGLE and _oauth_secrets(integration):
        return google_tokens.tester(context)
    return None


def test(
    engine: Engine, *, actor: Actor, provider_slug: str, context: ProviderContext
) -> views.ConnectResult:
    """ "Test connection", with OAuth tokens tested (and renewed) the provider's way. The
    console's Test connection button calls this."""
    with session_scope(engine) as session:
        row = rows.find(session, workspace_id=actor.workspace_id, provider_slug=provider_slug)
        tester = tester_for(row, context) if row is not None else None
    return connections.test(
        engine, actor=actor, provider_slug=provider_slug, context=context, tester=tester
    )


def revoker_for(integration: Integration) -> connections.Revoke | None:
    """How to revoke this integration's access at the provider; None when it did not come
    through OAuth (pasted keys: nothing was granted, the audit row says "not_applicable")."""
    if integration.provider not in (STRIPE, GOOGLE) or not _oauth_secrets(integration):
        return None
    if integration.provider == GOOGLE:

        def revoke_grant(secrets: dict[str, Any]) -> None:
            # Revoking the refresh token ends the grant, and its access tokens with it.
            token = secrets.get("refresh_token") or secrets.get("access_token")
            if token:
                google_drive.revoke(str(token), context=providers.provider_context(GOOGLE))

        return revoke_grant

    def deauthorize(secrets: dict[str, Any]) -> None:
        if not secrets.get("stripe_user_id"):
            return  # nothing to revoke on the platform
        providers.platform_stripe().connect_deauthorize(
            client_id=get_settings().platform_stripe_client_id,
            stripe_user_id=str(secrets["stripe_user_id"]),
        )

    return deauthorize


def disconnect(engine: Engine, *, actor: Actor, provider_slug: str) -> Integration:
    """Disconnect, revoking OAuth access at the provider first (Stripe Connect: deauthorize;
    Google: revoke the grant). The console's Disconnect button calls this."""
    with session_scope(engine) as session:
        row = rows.find(session, workspace_id=actor.workspace_id, provider_slug=provider_slug)
        revoke = revoker_for(row) if row is not None else None
    return connections.disconnect(engine, actor=actor, provider_slug=provider_slug, revoke=revoke)
