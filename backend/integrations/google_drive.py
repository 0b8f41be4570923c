"""Every call the product makes to Google Drive, through google-api-python-client and
google-auth, and the provider's declaration (``PROVIDER``): a service-account key form (or OAuth),
the root folder setting, and the connection test. Also Google's OAuth endpoints for "Connect
with Google": the consent URL, the code exchange, renewal (google-auth's own) and revocation.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import google.auth.credentials
import google.auth.exceptions
import google.oauth2.credentials
import google_auth_httplib2
import googleapiclient
import httplib2
import httpx
from google.oauth2 import service_account
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError
from pydantic import BaseModel, Field, SecretStr

from backend.integrations._common import HTTP_TIMEOUT, expect, raise_for_http_status, unreachable
from backend.integrations.base import (
    Category,
    ConnectionTest,
    InvalidCredentials,
    Method,
    PlanTier,
    Provider,
    ProviderContext,
    ProviderInfo,
    timed,
)
from backend.integrations.errors import (
    ProviderAuthFailed,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)

DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a secret)
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_REVOKE_URI = "https://oauth2.googleapis.com/revoke"
TIMEOUT_SECONDS = 30
_DRIVE_DOC = Path(googleapiclient.__file__).parent / "discovery_cache/documents/drive.v3.json"
_REQUIRED_FIELDS = ("client_email", "private_key")


class GoogleDriveCredentials(BaseModel):
    service_account_json: SecretStr = Field(
        description="The JSON key file of a service account (IAM → Service accounts → Keys)."
    )


class GoogleDriveSettings(BaseModel):
    root_folder_name: str = Field(default="Integrations Hub", min_length=1, max_length=200)


@functools.lru_cache(maxsize=1)
def _discovery_text() -> str:
    # The document ships inside the package: no network fetch at build time, same API every run.
    return _DRIVE_DOC.read_text()


def _discovery(sandbox_url: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(_discovery_text())
    if sandbox_url:
        # rootUrl, not client_options.api_endpoint: the latter keeps https for media uploads.
        doc["rootUrl"] = f"{sandbox_url}/google/"
    return copy.deepcopy(doc)


def token_uri(context: ProviderContext) -> str:
    """Where tokens come from. A pasted key file's own ``token_uri`` is ignored: it could send
    our signed assertion anywhere."""
    return f"{context.sandbox_url}/google/oauth2/token" if context.sandbox_url else GOOGLE_TOKEN_URI


def parse_service_account(raw: str) -> dict[str, Any]:
    """The key file as a dict, or ``InvalidCredentials`` saying what is wrong with it."""
    field = "service_account_json"
    try:
        info = json.loads(raw)
    except ValueError:
        raise InvalidCredentials(
            "This is not valid JSON. Paste the whole key file Google downloaded, from { to }.",
            field=field,
        ) from None
    if not isinstance(info, dict):
        raise InvalidCredentials("The key file must be a JSON object ({ … }).", field=field)
    if "installed" in info or "web" in info:
        raise InvalidCredentials(
            "This is an OAuth client file, not a service account key. Create a key under IAM → "
            "Service accounts → your account → Keys → Add key → JSON, and paste that file.",
            field=field,
        )
    if info.get("type") != "service_account":
        raise InvalidCredentials(
            'This JSON is not a service account key (its "type" should be "service_account").',
            field=field,
        )
    missing = [name for name in _REQUIRED_FIELDS if not info.get(name)]
    if missing:
        raise InvalidCredentials(
            f"The key file is missing {' and '.join(missing)}; download a new JSON key for the "
            "service account and paste it whole.",
            field=field,
        )
    return info


def service_account_credentials(
    info: dict[str, Any], context: ProviderContext
) -> service_account.Credentials:
    try:
        return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call,no-any-return]
            info | {"token_uri": token_uri(context)}, scopes=[DRIVE_SCOPE]
        )
    except (ValueError, TypeError):
        # google-auth's message can quote the key material; say only which field is at fault.
        raise InvalidCredentials(
            "The private_key in this key file cannot be read; download a new JSON key.",
            field="service_account_json",
        ) from None


# -- OAuth: "Connect with Google" ------------------------------------------------------------


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
    Google sent none (a renewal keeps the one it was given)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expiry: dt.datetime
    scope: str = ""


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
    client: OAuthClient, *, code: str, redirect_uri: str, context: ProviderContext
) -> OAuthTokens:
    """Trade the callback's authorization code for tokens (RFC 6749 section 4.1.3, as Google
    takes it: a form POST with the client's id and secret)."""
    try:
        response = httpx.post(
            token_uri(context),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": client.client_id,
                "client_secret": client.client_secret,
            },
            headers={"Accept": "application/json"},
            timeout=HTTP_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise unreachable("Google", exc) from None
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
        return OAuthTokens(
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]) if data.get("refresh_token") else None,
            expiry=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=int(data["expires_in"])),
            scope=str(data.get("scope") or ""),
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


def _refresh_failed(exc: google.auth.exceptions.RefreshError, advice: str = "") -> ProviderError:
    """google-auth's RefreshError as ours: retryable (Google busy) or not (revoked, invalid)."""
    said = (str(exc.args[0]) if exc.args else "the token was refused").rstrip(". ")
    if getattr(exc, "retryable", False):
        return ProviderUnavailable(f"Google could not renew the access token just now: {said}.")
    return ProviderAuthFailed(f"Google refused the credentials: {said}. {advice}".rstrip())


def refresh(client: OAuthClient, *, refresh_token: str, context: ProviderContext) -> OAuthTokens:
    """A new access token for a stored refresh token, through google-auth's own refresh."""
    credentials = user_credentials(
        client, access_token=None, refresh_token=refresh_token, expiry=None, context=context
    )
    try:
        credentials.refresh(  # type: ignore[no-untyped-call]
            google_auth_httplib2.Request(httplib2.Http(timeout=TIMEOUT_SECONDS))
        )
    except google.auth.exceptions.RefreshError as exc:
        raise _refresh_failed(exc) from None
    except (google.auth.exceptions.TransportError, httplib2.HttpLib2Error, OSError) as exc:
        raise ProviderUnavailable(f"Google could not be reached: {type(exc).__name__}") from None
    return tokens_of(credentials)


def revoke(token: str, *, context: ProviderContext) -> None:
    """Revoke a refresh (or access) token: the grant ends and Drive stops accepting it. A token
    Google no longer knows (revoked already, or expired) has nothing left to revoke."""
    try:
        response = httpx.post(
            revoke_uri(context),
            data={"token": token},
            headers={"Accept": "application/json"},
            timeout=HTTP_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise unreachable("Google", exc) from None
    if response.status_code == 200:
        return
    error, description = _oauth_error(response)
    if response.status_code == 400 and error == "invalid_token":
        return
    raise_for_http_status("Google", response, description or error or "revocation refused")


def _reason(exc: HttpError) -> str:
    reason = getattr(exc, "reason", None) or exc._get_reason()
    return str(reason).strip() or f"HTTP {exc.resp.status}"


class GoogleDriveAdapter:
    """A Drive v3 client for one connection; ``service`` is googleapiclient's resource."""

    def __init__(
        self,
        service: Any,
        *,
        throttle: Callable[[], None] | None = None,
        credentials: google.auth.credentials.Credentials | None = None,
        on_tokens: Callable[[OAuthTokens], None] | None = None,
    ) -> None:
        self.service = service
        self._throttle = throttle or (lambda: None)
        self._credentials = credentials
        self._on_tokens = on_tokens

    @classmethod
    def build(
        cls,
        credentials: google.auth.credentials.Credentials,
        context: ProviderContext,
        *,
        on_tokens: Callable[[OAuthTokens], None] | None = None,
    ) -> GoogleDriveAdapter:
        http = google_auth_httplib2.AuthorizedHttp(
            credentials, http=httplib2.Http(timeout=TIMEOUT_SECONDS)
        )
        service = build_from_document(_discovery(context.sandbox_url), http=http)
        return cls(service, throttle=context.throttle, credentials=credentials, on_tokens=on_tokens)

    @classmethod
    def from_service_account(
        cls, info: dict[str, Any], context: ProviderContext
    ) -> GoogleDriveAdapter:
        return cls.build(service_account_credentials(info, context), context)

    @classmethod
    def from_oauth(
        cls,
        *,
        access_token: str | None,
        refresh_token: str | None,
        client_id: str,
        client_secret: str,
        context: ProviderContext,
        expiry: dt.datetime | None = None,
        on_tokens: Callable[[OAuthTokens], None] | None = None,
    ) -> GoogleDriveAdapter:
        """For a connection made through Google's consent screen: the stored tokens and the
        app's OAuth client. google-auth renews an expired (or nearly expired) access token by
        itself; ``on_tokens`` then gets the new tokens, for the caller to store."""
        credentials = user_credentials(
            OAuthClient(client_id, client_secret),
            access_token=access_token,
            refresh_token=refresh_token,
            expiry=expiry,
            context=context,
        )
        return cls.build(credentials, context, on_tokens=on_tokens)

    def call(self, request: Any) -> dict[str, Any]:
        """Execute one googleapiclient request, with Google's errors as provider-neutral ones."""
        self._throttle()
        before = self._token()
        try:
            result: dict[str, Any] = request.execute(num_retries=0)
        except HttpError as exc:
            raise _translate(exc) from None
        except google.auth.exceptions.RefreshError as exc:
            raise _refresh_failed(
                exc,
                "Create a new key for the service account (or reconnect Google Drive) and try "
                "again.",
            ) from None
        except (google.auth.exceptions.TransportError, httplib2.HttpLib2Error, OSError) as exc:
            raise ProviderUnavailable(
                f"Google could not be reached: {type(exc).__name__}"
            ) from None
        finally:
            self._report_renewal(before)
        return result

    def _token(self) -> str | None:
        token = getattr(self._credentials, "token", None)
        return str(token) if token else None

    def _report_renewal(self, before: str | None) -> None:
        """Hand a token google-auth renewed during a call to whoever stores it."""
        credentials = self._credentials
        if self._on_tokens is None or not isinstance(
            credentials, google.oauth2.credentials.Credentials
        ):
            return
        after = self._token()
        if after is not None and after != before:
            self._on_tokens(tokens_of(credentials))

    def probe(self) -> dict[str, Any]:
        """Test connection: the cheapest call that needs a working token with Drive scope."""
        self.call(self.service.files().list(pageSize=1, fields="files(id)"))
        return {}


def _translate(exc: HttpError) -> ProviderError:
    status = int(exc.resp.status)
    said = _reason(exc)
    if status == 429:
        return ProviderRateLimited(f"Google Drive rate limit: {said}")
    if status >= 500:
        return ProviderUnavailable(f"Google Drive answered {status}: {said}")
    if status == 401:
        return ProviderAuthFailed(f"Google refused the credentials: {said}", status=status)
    if status == 403:
        if "scope" in said.lower() or "permission" in said.lower():
            return ProviderAuthFailed(
                f"Google says: {said} The connection needs full Drive access ({DRIVE_SCOPE}); "
                "reconnect and allow it.",
                status=status,
            )
        # Drive also uses 403 for per-user rate limits (userRateLimitExceeded).
        if "rate limit" in said.lower():
            return ProviderRateLimited(f"Google Drive rate limit: {said}")
        return ProviderAuthFailed(f"Google refused the request: {said}", status=status)
    return ProviderRejected(f"Google Drive refused the request: {said}", status=status)


class GoogleDriveProvider:
    info = ProviderInfo(
        slug="google_drive",
        name="Google Drive",
        category=Category.FILES,
        description="Keep contracts, invoices and exports in a Drive folder per show.",
        minimum_plan=PlanTier.PRO,
        logo="/logos/google_drive.svg",
        # API_KEY here means "paste a service account JSON key".
        methods=(Method.OAUTH, Method.API_KEY),
        docs_url="https://cloud.google.com/iam/docs/keys-create-delete",
    )
    credentials_model: type[BaseModel] = GoogleDriveCredentials
    settings_model: type[BaseModel] = GoogleDriveSettings

    def check_credentials(self, credentials: BaseModel, context: ProviderContext) -> None:
        raw = expect(credentials, GoogleDriveCredentials).service_account_json.get_secret_value()
        service_account_credentials(parse_service_account(raw), context)

    def test_connection(
        self, credentials: BaseModel, settings: BaseModel, context: ProviderContext
    ) -> ConnectionTest:
        raw = expect(credentials, GoogleDriveCredentials).service_account_json.get_secret_value()
        try:
            info = parse_service_account(raw)
            adapter = GoogleDriveAdapter.from_service_account(info, context)
        except InvalidCredentials as exc:
            return ConnectionTest(False, str(exc), 0)

        def call() -> dict[str, Any]:
            adapter.probe()
            return {"client_email": info["client_email"], "project_id": info.get("project_id")}

        return timed(call, f"Connected to Google Drive as {info['client_email']}.")


PROVIDER: Provider = GoogleDriveProvider()
