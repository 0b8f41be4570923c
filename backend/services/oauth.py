"""OAuth connections: Stripe Connect. The owner is sent to the provider with a signed ``state``
(workspace, operator, provider; 10 minutes); the provider sends the browser back to the
sidecar's callback, which verifies the state, exchanges the code on the platform account,
and stores the tokens sealed like pasted keys (tier-checked and tested the same way).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.integrations.errors import ProviderError
from backend.security import tokens
from backend.services import connections, providers
from backend.services.actors import Actor
from backend.services.errors import InvalidInput, PermissionDenied, ServiceError
from models import Integration, Membership, Operator

STRIPE = "stripe"


def stripe_redirect_uri() -> str:
    return f"{get_settings().public_sidecar_url.rstrip('/')}/oauth/stripe/callback"


def console_url(provider: str, **query: str) -> str:
    """Where the browser lands after a callback: the provider's manage page in the console."""
    from urllib.parse import urlencode

    base = f"{get_settings().public_console_url.rstrip('/')}/integrations/{provider}"
    return f"{base}?{urlencode(query)}" if query else base


def stripe_authorize_url(session: Session, *, actor: Actor) -> str:
    """Where "Connect with Stripe" sends the owner (tier-checked before they leave)."""
    actor.require_owner("connect integrations")
    connections.check_tier(
        session,
        workspace_id=actor.workspace_id,
        info=connections.provider(STRIPE).info,
    )
    settings = get_settings()
    state = tokens.oauth_state(
        settings.secret_key.get_secret_value(),
        workspace_id=actor.workspace_id,
        operator_id=actor.operator_id,
        provider=STRIPE,
    )
    return providers.platform_stripe().connect_authorize_url(
        client_id=settings.platform_stripe_client_id,
        redirect_uri=stripe_redirect_uri(),
        state=state,
    )


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


def complete_stripe(session: Session, *, code: str, state: str) -> connections.ConnectResult:
    """The callback's work: verify, exchange the code, store the account's tokens sealed."""
    settings = get_settings()
    try:
        verified = tokens.read_oauth_state(
            settings.secret_key.get_secret_value(), state, provider=STRIPE
        )
    except tokens.TokenError as exc:
        raise InvalidInput(str(exc)) from None
    actor = actor_from_state(session, verified)
    actor.require_owner("connect integrations")
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
        session,
        actor=actor,
        provider_slug=STRIPE,
        secrets=secrets,
        context=providers.provider_context(STRIPE),
    )


def revoker_for(integration: Integration) -> connections.Revoke | None:
    """How to revoke this integration's access at the provider, if it came through OAuth."""
    if integration.provider != STRIPE:
        return None

    def deauthorize(secrets: dict[str, Any]) -> None:
        if secrets.get("method") != "oauth" or not secrets.get("stripe_user_id"):
            return  # pasted keys: nothing to revoke on the platform
        providers.platform_stripe().connect_deauthorize(
            client_id=get_settings().platform_stripe_client_id,
            stripe_user_id=str(secrets["stripe_user_id"]),
        )

    return deauthorize


def disconnect(session: Session, *, actor: Actor, provider_slug: str) -> Integration:
    """Disconnect, revoking OAuth access at the provider first (Stripe Connect: deauthorize).
    The console's Disconnect button calls this."""
    row = connections.find(session, workspace_id=actor.workspace_id, provider_slug=provider_slug)
    revoke = revoker_for(row) if row is not None else None
    return connections.disconnect(session, actor=actor, provider_slug=provider_slug, revoke=revoke)
