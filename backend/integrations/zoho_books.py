"""Every call the product makes to Zoho Books (plain HTTP: Zoho's Python SDK covers CRM, not
Books), and the provider's declaration (``PROVIDER``): a self-client refresh token, the client's
id and secret, the organization and the data centre it lives in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr

from backend.integrations._common import (
    CALL_SECONDS,
    expect,
    raise_for_http_status,
    request,
)
from backend.integrations.base import (
    Category,
    ConnectionTest,
    EmptyModel,
    InvalidCredentials,
    Method,
    PlanTier,
    Provider,
    ProviderContext,
    ProviderInfo,
    timed,
)
from backend.integrations.errors import ProviderAuthFailed, ProviderRejected

_ZOHO_ID = re.compile(r"^1000\.[A-Za-z0-9]+$")
_ZOHO_TOKEN = re.compile(r"^1000\.[0-9a-f]+\.[0-9a-f]+$")

# The accounts server's grant errors (sent with HTTP 200), in words an operator can act on.
_GRANT_ERRORS = {
    "invalid_client": "the client id or secret is wrong, or the client is in another data "
    "centre; check both in the API console (api-console.zoho.{region}) and the region",
    "invalid_code": "the refresh token is wrong or was revoked; generate a new one from the "
    "self client (scope ZohoBooks.fullaccess.all) and exchange it for a refresh token",
    "invalid_client_secret": "the client secret is wrong; copy it again from the API console",
}


class Region(StrEnum):
    """Zoho's data centres: the domain suffix of accounts.zoho.* and www.zohoapis.*."""

    US = "com"
    EU = "eu"
    IN = "in"
    AU = "com.au"
    JP = "jp"
    CA = "ca"
    CN = "com.cn"
    SA = "sa"
    UK = "uk"


class ZohoBooksCredentials(BaseModel):
    client_id: str = Field(description="Self client's Client ID (1000.…) from api-console.zoho.")
    client_secret: SecretStr = Field(description="Self client's Client Secret.")
    refresh_token: SecretStr = Field(description="Refresh token (1000.….…) for the self client.")
    organization_id: str = Field(description="Settings → Organization profile → Organization ID.")
    region: Region = Field(default=Region.US, description="Where the Zoho account lives.")
    # Zoho signs nothing: its webhooks carry this shared secret in X-Zoho-Secret (intake checks).
    webhook_secret: SecretStr | None = None


class ZohoEndpoints:
    def __init__(self, accounts: str, api: str) -> None:
        self.accounts, self.api = accounts.rstrip("/"), api.rstrip("/")

    @classmethod
    def for_context(cls, region: Region, context: ProviderContext) -> ZohoEndpoints:
        if context.sandbox_url:
            return cls(f"{context.sandbox_url}/zoho", f"{context.sandbox_url}/zoho")
        return cls(f"https://accounts.zoho.{region.value}", f"https://www.zohoapis.{region.value}")


class ZohoBooksAdapter:
    def __init__(
        self,
        credentials: ZohoBooksCredentials,
        endpoints: ZohoEndpoints,
        *,
        throttle: Callable[[], None] | None = None,
        seconds: float = CALL_SECONDS,
    ) -> None:
        self._credentials = credentials
        self._endpoints = endpoints
        self._throttle = throttle or (lambda: None)
        self._seconds = seconds
        self._access_token: str | None = None

    def _post_grant(self) -> str:
        creds = self._credentials
        self._throttle()
        response = request(
            "Zoho",
            "POST",
            f"{self._endpoints.accounts}/oauth/v2/token",
            slug="zoho_books",
            seconds=self._seconds,
            # A form body rather than Zoho's documented query string: secrets in a URL end up
            # in access logs. Zoho accepts both.
            data={
                "grant_type": "refresh_token",
                "client_id": creds.client_id.strip(),
                "client_secret": creds.client_secret.get_secret_value().strip(),
                "refresh_token": creds.refresh_token.get_secret_value().strip(),
            },
        )
        payload = _json(response)
        raise_for_http_status("Zoho", response, str(payload.get("error") or "no details"))
        error = payload.get("error")
        if error or not payload.get("access_token"):
            code = str(error or "no_access_token")
            advice = _GRANT_ERRORS.get(code, "").format(region=creds.region.value)
            raise ProviderAuthFailed(
                f"Zoho says {code}: {advice}" if advice else f"Zoho says {code}", code=code
            )
        return str(payload["access_token"])

    def _get(self, path: str) -> dict[str, Any]:
        if self._access_token is None:
            self._access_token = self._post_grant()
        self._throttle()
        response = request(
            "Zoho Books",
            "GET",
            f"{self._endpoints.api}/books/v3/{path}",
            slug="zoho_books",
            seconds=self._seconds,
            headers={"Authorization": f"Zoho-oauthtoken {self._access_token}"},
        )
        payload = _json(response)
        raise_for_http_status("Zoho Books", response, str(payload.get("message") or "no details"))
        return payload

    def organizations(self) -> list[dict[str, Any]]:
        orgs = self._get("organizations").get("organizations") or []
        return [o for o in orgs if isinstance(o, dict)]


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload: Any = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


class ZohoBooksProvider:
    info = ProviderInfo(
        slug="zoho_books",
        name="Zoho Books",
        category=Category.ACCOUNTING,
        description="Record paid invoices and payouts in Zoho Books.",
        minimum_plan=PlanTier.BUSINESS,
        logo="/logos/zoho_books.svg",
        methods=(Method.API_KEY,),
        docs_url="https://www.zoho.com/accounts/protocol/oauth/self-client/overview.html",
    )
    credentials_model: type[BaseModel] = ZohoBooksCredentials
    settings_model: type[BaseModel] = EmptyModel

    def check_credentials(self, credentials: BaseModel, context: ProviderContext) -> None:
        creds = expect(credentials, ZohoBooksCredentials)
        if not _ZOHO_ID.match(creds.client_id.strip()):
            raise InvalidCredentials(
                "A Zoho client id starts with 1000. — copy the Client ID of your Self Client "
                "from the API console.",
                field="client_id",
            )
        if not creds.client_secret.get_secret_value().strip():
            raise InvalidCredentials(
                "Paste the Self Client's Client Secret.", field="client_secret"
            )
        refresh = creds.refresh_token.get_secret_value().strip()
        if not _ZOHO_TOKEN.match(refresh):
            raise InvalidCredentials(
                "A Zoho refresh token looks like 1000.<letters>.<letters>. A code from the "
                "Self Client's Generate Code tab is not one: exchange it for a refresh token "
                "first (it is valid for a few minutes only).",
                field="refresh_token",
            )
        if not creds.organization_id.strip().isdigit():
            raise InvalidCredentials(
                "The organization id is a number: Zoho Books → Settings → Organization Profile.",
                field="organization_id",
            )

    def test_connection(
        self, credentials: BaseModel, settings: BaseModel, context: ProviderContext
    ) -> ConnectionTest:
        creds = expect(credentials, ZohoBooksCredentials)
        adapter = self.adapter(creds, context)
        wanted = creds.organization_id.strip()

        def call() -> dict[str, Any]:
            orgs = adapter.organizations()
            found = next((o for o in orgs if str(o.get("organization_id")) == wanted), None)
            if found is None:
                known = ", ".join(f"{o.get('name')} ({o.get('organization_id')})" for o in orgs)
                raise ProviderRejected(
                    f"This Zoho account has no organization {wanted}; it has: "
                    f"{known or 'none'}. Correct the organization id."
                )
            return {
                "organization_id": wanted,
                "name": found.get("name"),
                "currency_code": found.get("currency_code"),
            }

        outcome = timed(call, "Connected to Zoho Books.")
        if outcome.ok:
            return ConnectionTest(
                True,
                f"Connected to Zoho Books organization {outcome.account.get('name')}.",
                outcome.latency_ms,
                outcome.account,
            )
        return outcome

    def adapter(
        self, credentials: ZohoBooksCredentials, context: ProviderContext
    ) -> ZohoBooksAdapter:
        return ZohoBooksAdapter(
            credentials,
            ZohoEndpoints.for_context(credentials.region, context),
            throttle=context.throttle,
        )


PROVIDER: Provider = ZohoBooksProvider()
