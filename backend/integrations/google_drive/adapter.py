"""Every call the product makes to Google Drive, through google-api-python-client and
google-auth: the service-account key file, the Drive v3 client built from the packaged
discovery document, and Drive's errors as provider-neutral ones.

Tested in tests/integrations/test_google_drive.py (through google-api-python-client and
google-auth, against the sandbox).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import google.auth.credentials
import google.auth.exceptions
import google.oauth2.credentials
import google_auth_httplib2
import googleapiclient
import httplib2
from google.oauth2 import service_account
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError

from backend.integrations.base import (
    InvalidCredentials,
    ProviderContext,
)
from backend.integrations.deadline import Http, within
from backend.integrations.errors import (
    ProviderAuthFailed,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from backend.integrations.google_drive.oauth import (
    DRIVE_SCOPE,
    TIMEOUT_SECONDS,
    OAuthClient,
    OAuthTokens,
    refresh_failed,
    token_uri,
    tokens_of,
    user_credentials,
)

_DRIVE_DOC = Path(googleapiclient.__file__).parent / "discovery_cache/documents/drive.v3.json"
_REQUIRED_FIELDS = ("client_email", "private_key")


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
        seconds: float = TIMEOUT_SECONDS,
    ) -> None:
        self.service = service
        self._throttle = throttle or (lambda: None)
        self._credentials = credentials
        self._on_tokens = on_tokens
        self._seconds = seconds

    @classmethod
    def build(
        cls,
        credentials: google.auth.credentials.Credentials,
        context: ProviderContext,
        *,
        on_tokens: Callable[[OAuthTokens], None] | None = None,
        seconds: float = TIMEOUT_SECONDS,
    ) -> GoogleDriveAdapter:
        http = google_auth_httplib2.AuthorizedHttp(credentials, http=Http(timeout=TIMEOUT_SECONDS))
        service = build_from_document(_discovery(context.sandbox_url), http=http)
        return cls(
            service,
            throttle=context.throttle,
            credentials=credentials,
            on_tokens=on_tokens,
            seconds=seconds,
        )

    @classmethod
    def from_service_account(
        cls, info: dict[str, Any], context: ProviderContext, *, seconds: float = TIMEOUT_SECONDS
    ) -> GoogleDriveAdapter:
        return cls.build(service_account_credentials(info, context), context, seconds=seconds)

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
            with within("Google", self._seconds, slug="google_drive"):
                return self._execute(request)
        finally:
            self._report_renewal(before)

    @staticmethod
    def _execute(request: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = request.execute(num_retries=0)
        except HttpError as exc:
            raise _translate(exc) from None
        except google.auth.exceptions.RefreshError as exc:
            raise refresh_failed(
                exc,
                "Create a new key for the service account (or reconnect Google Drive) and try "
                "again.",
            ) from None
        except (google.auth.exceptions.TransportError, httplib2.HttpLib2Error, OSError) as exc:
            raise ProviderUnavailable(
                f"Google could not be reached: {type(exc).__name__}"
            ) from None
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
