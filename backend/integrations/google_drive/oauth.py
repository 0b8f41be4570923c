"""Google's OAuth endpoints: where tokens come from (``token_uri``, for service accounts and
users alike), and for "Connect with Google" the consent URL, the code exchange, renewal
(google-auth's own) and revocation, with Google's refusals as provider-neutral errors.

Tested in tests/integrations/test_google_drive.py (through google-api-python-client and
google-auth, against the sandbox).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from urllib.parse import urlencode

import google.auth.exceptions
import google.oauth2.credentials
import google_auth_httplib2
import httplib2
import httpx

from backend.integrations._common import raise_for_http_status, request
from backend.integrations.base import ProviderContext
from backend.integrations.deadline import Http, within
from backend.integrations.errors import (
    ProviderAuthFailed,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
)

DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a secret)
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_REVOKE_URI = "https://oauth2.googleapis.com/revoke"
TIMEOUT_SECONDS = 30


def token_uri(context: ProviderContext) -> str:
    """Where tokens come from. A pasted key file's own ``token_uri`` is ignored: it could send
    our signed assertion anywhere."""
    return f"{context.sandbox_url}/google/oauth2/token" if context.sandbox_url else GOOGLE_TOKEN_URI


def auth_uri(context: ProviderContext) -> str:
    """Google's consent page (the sandbox's in sandbox mode)."""
    if context.sandbox_url:
        return f"{context.sandbox_url}/google/_pages/o/oauth2/auth"
    return GOOGLE_AUTH_URI


def revoke_uri(context: ProviderContext) -> str:
    return (
        f"{context.sandbox_url}/google/oauth2/revoke" if context.sandbox_url else GOOGLE_REVOKE_URI
    )


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """The hub's own OAuth client at Google (one for every workspace)."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class OAuthTokens:
    """What Google granted. ``expiry`` is timezone-aware UTC; ``refresh_token`` is None when
    Google sent none (a renewal keeps the one it was given). ``refresh_expiry``: when the
    refresh token stops working, when Google says (``refresh_token_expires_in``: an app in
    "testing" gets 7 days, a grant the user limited in time its time); None: until revoked."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expiry: dt.datetime
    scope: str = ""
    refresh_expiry: dt.datetime | None = None


def authorize_url(
    client_id: str, *, redirect_uri: str, state: str, context: ProviderContext
) -> str:
    """Where "Connect with Google" sends the owner."""
    query = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": DRIVE_SCOPE,
        # offline: a refresh token, so the connection outlives the hour an access token lasts;
        # consent: Google sends a refresh token again when an owner reconnects (it otherwise
        # sends one only the first time).
        "access_type": "offline",
        "prompt": "consent",
        "state": state,
    }
    return f"{auth_uri(context)}?{urlencode(query)}"


def _oauth_error(response: httpx.Response) -> tuple[str, str]:
    """The token endpoint's ``error`` and ``error_description`` (empty when absent)."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("error") or ""), str(body.get("error_description") or "")


def exchange_code(
    client: OAuthClient,
    *,
    code: str,
    redirect_uri: str,
    context: ProviderContext,
    seconds: float = TIMEOUT_SECONDS,
) -> OAuthTokens:
    """Trade the callback's authorization code for tokens (RFC 6749 section 4.1.3, as Google
    takes it: a form POST with the client's id and secret)."""
    response = request(
        "Google",
        "POST",
        token_uri(context),
        slug="google_drive",
        seconds=seconds,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        },
        headers={"Accept": "application/json"},
    )
    if response.status_code >= 500:
        raise ProviderUnavailable(f"Google answered {response.status_code}; try again shortly.")
    if response.status_code != 200:
        error, description = _oauth_error(response)
        said = f"{error}: {description}" if description else error or f"HTTP {response.status_code}"
        if error == "invalid_client":
            raise ProviderAuthFailed(
                f"Google does not accept the hub's OAuth client ({said}); check the client id "
                "and secret the hub is configured with.",
                status=response.status_code,
            )
        if error == "invalid_grant":
            raise ProviderAuthFailed(
                f"Google refused the authorization code ({said}); it is single use and lasts "
                "minutes. Connect again.",
                status=response.status_code,
            )
        raise ProviderRejected(f"Google refused the code exchange: {said}", status=400)
    try:
        data = response.json()
        now = dt.datetime.now(dt.UTC)
        refresh_lifetime = data.get("refresh_token_expires_in")
        return OAuthTokens(
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]) if data.get("refresh_token") else None,
            expiry=now + dt.timedelta(seconds=int(data["expires_in"])),
            scope=str(data.get("scope") or ""),
            refresh_expiry=(
                now + dt.timedelta(seconds=int(refresh_lifetime))
                if refresh_lifetime is not None
                else None
            ),
        )
    except (ValueError, KeyError, TypeError):
        raise ProviderRejected("Google's token answer could not be read.") from None


def _naive_utc(moment: dt.datetime | None) -> dt.datetime | None:
    # google-auth compares expiries with a naive UTC "now".
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


def user_credentials(
    client: OAuthClient,
    *,
    access_token: str | None,
    refresh_token: str | None,
    expiry: dt.datetime | None,
    context: ProviderContext,
) -> google.oauth2.credentials.Credentials:
    """google-auth's credentials for a consent-screen connection: it renews the access token
    by itself when it has expired (or is about to)."""
    return google.oauth2.credentials.Credentials(  # type: ignore[no-untyped-call]
        token=access_token,
        refresh_token=refresh_token,
        token_uri=token_uri(context),
        client_id=client.client_id,
        client_secret=client.client_secret,
        scopes=[DRIVE_SCOPE],
        expiry=_naive_utc(expiry),
    )


def tokens_of(credentials: google.oauth2.credentials.Credentials) -> OAuthTokens:
    expiry = credentials.expiry or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    scopes = credentials.granted_scopes or credentials.scopes or []
    return OAuthTokens(
        access_token=str(credentials.token),
        refresh_token=credentials.refresh_token,
        expiry=expiry.replace(tzinfo=dt.UTC),
        scope=" ".join(scopes),
    )


def refresh_failed(exc: google.auth.exceptions.RefreshError, advice: str = "") -> ProviderError:
    """google-auth's RefreshError as ours: retryable (Google busy) or not (revoked, invalid)."""
    said = (str(exc.args[0]) if exc.args else "the token was refused").rstrip(". ")
    if getattr(exc, "retryable", False):
        return ProviderUnavailable(f"Google could not renew the access token just now: {said}.")
    return ProviderAuthFailed(f"Google refused the credentials: {said}. {advice}".rstrip())


def refresh(
    client: OAuthClient,
    *,
    refresh_token: str,
    context: ProviderContext,
    seconds: float = TIMEOUT_SECONDS,
) -> OAuthTokens:
    """A new access token for a stored refresh token, through google-auth's own refresh."""
    credentials = user_credentials(
        client, access_token=None, refresh_token=refresh_token, expiry=None, context=context
    )
    with within("Google", seconds, slug="google_drive"):
        try:
            credentials.refresh(  # type: ignore[no-untyped-call]
                google_auth_httplib2.Request(Http(timeout=TIMEOUT_SECONDS))
            )
        except google.auth.exceptions.RefreshError as exc:
            raise refresh_failed(exc) from None
        except (google.auth.exceptions.TransportError, httplib2.HttpLib2Error, OSError) as exc:
            raise ProviderUnavailable(
                f"Google could not be reached: {type(exc).__name__}"
            ) from None
    return tokens_of(credentials)


def revoke(token: str, *, context: ProviderContext, seconds: float = TIMEOUT_SECONDS) -> None:
    """Revoke a refresh (or access) token: the grant ends and Drive stops accepting it. A token
    Google no longer knows (revoked already, or expired) has nothing left to revoke."""
    response = request(
        "Google",
        "POST",
        revoke_uri(context),
        slug="google_drive",
        seconds=seconds,
        data={"token": token},
        headers={"Accept": "application/json"},
    )
    if response.status_code == 200:
        return
    error, description = _oauth_error(response)
    if response.status_code == 400 and error == "invalid_token":
        return
    raise_for_http_status("Google", response, description or error or "revocation refused")
