"""Adapters for a workspace, built from its stored credentials and the provider mode: the one
place that decides whether a call goes to the sandbox or to the real provider.

Covered by tests/connections/test_provider_status.py, tests/connections/test_oauth.py and
tests/invoicing/test_service.py (every adapter they use is built here).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.config import ProviderMode, get_settings
from backend.connections import credentials
from backend.db import session_scope
from backend.integrations import messenger
from backend.integrations.base import ProviderContext
from backend.integrations.errors import ProviderAuthFailed
from backend.integrations.messenger import MessengerAdapter
from backend.integrations.stripe import StripeAdapter, StripeEndpoints
from backend.platform import circuits
from backend.platform.errors import NotFound
from backend.platform.provider_failures import provider_name
from models import Integration, IntegrationStatus


def stripe_endpoints() -> StripeEndpoints:
    settings = get_settings()
    if settings.provider_mode is ProviderMode.SANDBOX:
        return StripeEndpoints.sandbox(settings.sandbox_url)
    return StripeEndpoints()


def throttle(engine: Engine, provider: str, workspace_id: int | None) -> Callable[[], None]:
    """Wait for the request's turn under the rate limit of the workspace's account at the
    provider (None: the platform's) before each request: providers limit per account, so one
    workspace's run never slows another's. The turn is reserved in a short transaction of its
    own (the bucket's row lock is held for microseconds, not for the call), then waited for
    outside any."""

    def wait_for_token() -> None:
        with session_scope(engine) as session:
            wait = circuits.reserve_token(session, provider=provider, workspace_id=workspace_id)
        if wait > 0:
            time.sleep(wait)

    return wait_for_token


def provider_context(
    provider: str, engine: Engine | None = None, *, workspace_id: int | None = None
) -> ProviderContext:
    """What an adapter is handed: sandbox or live, and (given ``engine``) the rate limit of the
    workspace's account at the provider.

    The throttle takes its token in a short transaction of its own before each request, so
    the adapter must be called with no transaction open, which is the rule for every provider
    call (docs/security/transactions.md): jobs call through ``JobContext.call_provider``, and
    connect, test and the OAuth callbacks run in steps, so their tests count against the
    account's limit too. Without ``engine`` the adapter is not throttled (a check that makes
    no call, the OAuth start hop, the platform's own rare calls).
    """
    settings = get_settings()
    live = settings.provider_mode is ProviderMode.LIVE
    return ProviderContext(
        live=live,
        sandbox_url=None if live else settings.sandbox_url,
        throttle=(
            throttle(engine, provider, workspace_id) if engine is not None else (lambda: None)
        ),
    )


# The platform's own Stripe account in the call log (a workspace's plan upgrade, Stripe
# Connect's code exchange): its figures are not the workspace's Stripe integration's.
PLATFORM_STRIPE = "stripe_platform"


def platform_stripe() -> StripeAdapter:
    """The platform's own Stripe account (plans, Checkout, Connect OAuth), keyed by settings.

    Not throttled through its bucket (``circuits.key_for("stripe", None)``, the platform's,
    apart from every workspace's): these calls are rare (an upgrade, a connect) and a person
    waits on each of them.
    """
    settings = get_settings()
    return StripeAdapter(
        settings.platform_stripe_secret_key.get_secret_value(),
        endpoints=stripe_endpoints(),
        log_as=PLATFORM_STRIPE,
    )


def _integration(session: Session, *, workspace_id: int, provider: str) -> Integration | None:
    return session.scalars(
        select(Integration).where(
            Integration.workspace_id == workspace_id, Integration.provider == provider
        )
    ).first()


def active_integration(session: Session, *, workspace_id: int, provider: str) -> Integration:
    """The workspace's integration, to start new work with (NotFound, in words, otherwise)."""
    integration = _integration(session, workspace_id=workspace_id, provider=provider)
    if integration is not None and integration.status is IntegrationStatus.ERROR:
        raise NotFound(
            f"{provider_name(provider)} refused this workspace's credentials; fix them under "
            "Integrations, then try again."
        )
    if integration is None or integration.status is not IntegrationStatus.ACTIVE:
        raise NotFound(
            f"{provider_name(provider)} is not connected in this workspace; connect it under "
            "Integrations."
        )
    return integration


def connected_integration(session: Session, *, workspace_id: int, provider: str) -> Integration:
    """The integration a queued job calls with: Active, or Error (a refused credential may work
    again, and the call that finds so brings the integration back: provider_status)."""
    integration = _integration(session, workspace_id=workspace_id, provider=provider)
    if integration is None or integration.status is IntegrationStatus.INACTIVE:
        raise NotFound(
            f"{provider_name(provider)} is not connected in this workspace; connect it under "
            "Integrations."
        )
    return integration


def stripe_for(session: Session, *, workspace_id: int) -> StripeAdapter:
    integration = connected_integration(session, workspace_id=workspace_id, provider="stripe")
    secret = credentials.unseal(integration).get("secret_key")
    if not secret:
        raise ProviderAuthFailed("the Stripe connection has no secret key; reconnect Stripe")
    engine = session.get_bind().engine
    return StripeAdapter(
        secret, endpoints=stripe_endpoints(), throttle=throttle(engine, "stripe", workspace_id)
    )


def messenger_for(session: Session, *, workspace_id: int) -> MessengerAdapter:
    """The workspace's Facebook Page, to message buyers (NotFound when not connected)."""
    integration = connected_integration(session, workspace_id=workspace_id, provider="messenger")
    token = credentials.unseal(integration).get("page_access_token")
    if not token:
        raise ProviderAuthFailed("the Messenger connection has no page token; reconnect it")
    engine = session.get_bind().engine
    return messenger.PROVIDER.adapter(  # type: ignore[attr-defined, no-any-return]
        messenger.MessengerCredentials(page_access_token=token),
        provider_context("messenger", engine, workspace_id=workspace_id),
    )
