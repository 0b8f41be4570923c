"""Google Drive connections made through Google's consent screen: the tokens' sealed shape, their
renewal before they expire (a periodic job), and Drive clients that renew on use. A renewal
Google refuses (access revoked, grant expired) turns the integration Error, telling the owner to
reconnect; the hub's tile then offers "Reconnect". When Google says the grant itself ends (an
app in "testing": seven days), that moment is kept unsealed (``REFRESH_EXPIRY``) for the alert
rule and the Health page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.connections import credentials, facts, providers
from backend.connections import service as connections
from backend.db import session_scope
from backend.integrations import call_log, google_drive
from backend.integrations.base import ConnectionTest, ProviderContext, timed
from backend.integrations.errors import ProviderAuthFailed, ProviderError
from backend.platform import audit
from backend.security.crypto import CryptoError
from models import Integration, IntegrationStatus, utcnow

PROVIDER = "google_drive"
METHOD = "oauth"
# Renew this long before expiry: a job that runs every few minutes never hands out a dead token.
REFRESH_WINDOW = dt.timedelta(minutes=10)
REFRESH_OPERATION = "oauth_refresh"
RECONNECT = "Reconnect: open Google Drive under Integrations and press Connect with Google."
# When the refresh token stops working (ISO 8601, UTC), as Google said at connect time; absent
# when it lasts until revoked. A fact of the connection, not a secret (see facts.py): kept in
# the integration's settings JSON, where a rule reads it every minute without unsealing.
REFRESH_EXPIRY = "google_refresh_expires_at"

log = structlog.get_logger("google_tokens")


def client() -> google_drive.OAuthClient:
    """The hub's OAuth client at Google, from the settings."""
    settings = get_settings()
    return google_drive.OAuthClient(
        settings.google_client_id, settings.google_client_secret.get_secret_value()
    )


def sealed(tokens: google_drive.OAuthTokens, *, refresh_token: str | None = None) -> dict[str, Any]:
    """What an OAuth connection stores (sealed). A renewal usually comes without a refresh
    token: the one it was made with is kept."""
    return {
        "method": METHOD,
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token or refresh_token,
        "expiry": tokens.expiry.astimezone(dt.UTC).isoformat(),
        "scope": tokens.scope,
    }


def is_oauth(secrets: dict[str, Any]) -> bool:
    return secrets.get("method") == METHOD


def _moment(raw: object) -> dt.datetime | None:
    if not raw:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(raw))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def expiry_of(secrets: dict[str, Any]) -> dt.datetime | None:
    return _moment(secrets.get("expiry"))


def learnt(tokens: google_drive.OAuthTokens) -> dict[str, Any]:
    """What a connect stores unsealed about the grant (``facts``): when it ends, if it does."""
    if tokens.refresh_expiry is None:
        return {}
    return {REFRESH_EXPIRY: tokens.refresh_expiry.astimezone(dt.UTC).isoformat()}


def refresh_expiry_of(integration: Integration) -> dt.datetime | None:
    """When the connection's refresh token stops working; None: until revoked (or not an
    OAuth connection)."""
    return _moment(facts.of(integration.settings).get(REFRESH_EXPIRY))


def google_refresh_expiry(session: Session, workspace_id: int) -> dt.datetime | None:
    """For the Health page's Google tile: when the workspace's Google Drive grant ends and
    Drive work stops unless someone reconnects. None when it has no end (or no Google
    connection through the consent screen)."""
    row = session.scalars(
        select(Integration).where(
            Integration.workspace_id == workspace_id, Integration.provider == PROVIDER
        )
    ).first()
    return refresh_expiry_of(row) if row is not None else None


Renewed = Callable[[google_drive.OAuthTokens], None]


def _adapter(
    secrets: dict[str, Any], context: ProviderContext, *, on_renewal: Renewed
) -> google_drive.GoogleDriveAdapter:
    oauth_client = client()
    return google_drive.GoogleDriveAdapter.from_oauth(
        access_token=secrets.get("access_token"),
        refresh_token=secrets.get("refresh_token"),
        client_id=oauth_client.client_id,
        client_secret=oauth_client.client_secret,
        expiry=expiry_of(secrets),
        context=context,
        on_tokens=on_renewal,
    )


def tester(context: ProviderContext) -> connections.Tester:
    """ "Test connection" for an OAuth connection: list one file with the stored tokens,
    renewing the access token first when it has expired (the renewal is kept)."""

    def test(secrets: dict[str, Any]) -> ConnectionTest:
        def remember(tokens: google_drive.OAuthTokens) -> None:
            secrets.update(sealed(tokens, refresh_token=secrets.get("refresh_token")))

        adapter = _adapter(secrets, context, on_renewal=remember)

        def call() -> dict[str, Any]:
            adapter.probe()
            return {}

        return timed(call, "Connected to Google Drive through Google sign-in.")

    return test


def drive_for(session: Session, *, workspace_id: int) -> google_drive.GoogleDriveAdapter:
    """The workspace's Drive client for jobs: a service-account key, or OAuth tokens that
    google-auth renews when expired; a renewed token is sealed into the row, written with the
    caller's next commit. Call Drive through ``JobContext.call_provider`` (no transaction open
    while Google answers)."""
    integration = providers.active_integration(
        session, workspace_id=workspace_id, provider=PROVIDER
    )
    secrets = credentials.unseal(integration)
    engine = session.get_bind().engine
    context = providers.provider_context(PROVIDER, engine, workspace_id=workspace_id)
    if is_oauth(secrets):

        def remember(tokens: google_drive.OAuthTokens) -> None:
            secrets.update(sealed(tokens, refresh_token=secrets.get("refresh_token")))
            credentials.seal(integration, secrets)

        return _adapter(secrets, context, on_renewal=remember)
    raw = secrets.get("service_account_json")
    if not raw:
        raise ProviderAuthFailed("The Google Drive connection has no credentials. " + RECONNECT)
    try:
        info = google_drive.parse_service_account(str(raw))
    except ValueError as exc:
        raise ProviderAuthFailed(f"The stored service account key is unusable: {exc}") from None
    return google_drive.GoogleDriveAdapter.from_service_account(info, context)


# -- renewal before expiry (the periodic job) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Due:
    integration_id: int
    workspace_id: int
    refresh_token: str


@dataclass
class RefreshReport:
    renewed: int = 0
    # Google refused the refresh token: the integration is now Error.
    failed: int = 0
    # Google was unreachable or busy: the token still works a while; the next run tries again.
    postponed: int = 0


def due(
    session: Session, *, now: dt.datetime | None = None, within: dt.timedelta = REFRESH_WINDOW
) -> list[Due]:
    """Active OAuth connections whose access token expires within ``within``. Expiries are
    inside the sealed credentials, so each row is opened (one a workspace: cheap)."""
    now = now or utcnow()
    rows = session.scalars(
        select(Integration)
        .where(
            Integration.provider == PROVIDER,
            Integration.status == IntegrationStatus.ACTIVE,
            Integration.credentials_enc.is_not(None),
        )
        .order_by(Integration.id)
    ).all()
    out = []
    for row in rows:
        try:
            secrets = credentials.unseal(row)
        except CryptoError:
            continue  # a key missing from the ring: startup's key check names it
        refresh_token = secrets.get("refresh_token")
        if not is_oauth(secrets) or not refresh_token:
            continue
        expiry = expiry_of(secrets)
        if expiry is None or expiry - now <= within:
            out.append(Due(row.id, row.workspace_id, str(refresh_token)))
    return out


def _current(session: Session, item: Due) -> tuple[Integration, dict[str, Any]] | None:
    """The row and its secrets, if it still holds the refresh token that was renewed: a
    disconnect or a reconnect meanwhile wins over this renewal."""
    row = session.get(Integration, item.integration_id)
    if row is None:
        return None
    try:
        secrets = credentials.unseal(row)
    except CryptoError:
        return None
    if secrets.get("refresh_token") != item.refresh_token:
        return None
    return row, secrets


def store_renewal(session: Session, item: Due, tokens: google_drive.OAuthTokens) -> bool:
    """Seal the renewed access token; False when the row changed meanwhile."""
    current = _current(session, item)
    if current is None:
        return False
    row, secrets = current
    secrets.update(sealed(tokens, refresh_token=item.refresh_token))
    credentials.seal(row, secrets)
    return True


def mark_refused(session: Session, item: Due, reason: str) -> bool:
    """Google refused the refresh token: the integration turns Error and says to reconnect."""
    current = _current(session, item)
    if current is None:
        return False
    row, _ = current
    row.status = IntegrationStatus.ERROR
    row.last_error = f"{reason} {RECONNECT}"
    row.last_checked_at = utcnow()
    audit.record(
        session,
        actor="scheduler",
        action="integration.refresh_failed",
        target=f"integration:{PROVIDER}",
        workspace_id=row.workspace_id,
        details={"status": row.status.value, "error": reason[:500]},
    )
    return True


def refresh_due(
    engine: Engine, *, now: dt.datetime | None = None, within: dt.timedelta = REFRESH_WINDOW
) -> RefreshReport:
    """Renew every Google access token about to expire. Google is called outside any
    transaction (on SQLite a transaction holds the write lock); each outcome is written in a
    short one of its own."""
    with session_scope(engine) as session:
        items = due(session, now=now, within=within)
    report = RefreshReport()
    context = providers.provider_context(PROVIDER)
    oauth_client = client()
    for item in items:
        try:
            with call_log.scope(
                workspace_id=item.workspace_id,
                integration_id=item.integration_id,
                operation=REFRESH_OPERATION,
            ):
                tokens = google_drive.refresh(
                    oauth_client, refresh_token=item.refresh_token, context=context
                )
        except ProviderAuthFailed as exc:
            with session_scope(engine) as session:
                if mark_refused(session, item, str(exc)):
                    report.failed += 1
            log.warning("google token refused", integration_id=item.integration_id, reason=str(exc))
            continue
        except ProviderError as exc:
            report.postponed += 1
            log.info(
                "google token renewal postponed",
                integration_id=item.integration_id,
                reason=str(exc),
            )
            continue
        with session_scope(engine) as session:
            if store_renewal(session, item, tokens):
                report.renewed += 1
    return report
