"""Every call the product makes to Facebook Messenger through the Graph API (plain HTTP: there is
no official Python SDK), and the provider's declaration (``PROVIDER``): a Page access token and
the Page it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr

from backend.integrations._common import CALL_SECONDS, expect, request, retry_after
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

LIVE_GRAPH = "https://graph.facebook.com"
GRAPH_VERSION = "v21.0"
# Graph's codes: 190/102/104 token problems, 10/200-299 permissions, 4/17/32/613 throttling,
# 1/2 transient.
_TOKEN_CODES = {102, 104, 190}
_THROTTLE_CODES = {4, 17, 32, 613}
_TRANSIENT_CODES = {1, 2}
_OUTSIDE_WINDOW_SUBCODE = 2018278


class MessengerCredentials(BaseModel):
    page_access_token: SecretStr = Field(
        description="Page access token (EAA…) of the Facebook Page, with pages_messaging."
    )


class MessengerSettings(BaseModel):
    # The Page the token should belong to; empty means "whatever /me answers".
    page_id: str | None = Field(default=None, max_length=40)


def _graph_error(response: httpx.Response) -> ProviderError:
    try:
        body: Any = response.json()
    except ValueError:
        body = {}
    error: dict[str, Any] = body.get("error", {}) if isinstance(body, dict) else {}
    message = str(error.get("message") or f"HTTP {response.status_code}")
    code = error.get("code")
    said = f"Facebook says: {message}"
    if response.status_code == 429 or code in _THROTTLE_CODES:
        return ProviderRateLimited(said, retry_after=retry_after(response))
    if response.status_code >= 500 or code in _TRANSIENT_CODES or error.get("is_transient"):
        return ProviderUnavailable(said)
    # Graph labels nearly every error "OAuthException", per-recipient ones too ((#100) no such
    # user, (#551) person unavailable, (#10)/2018278 outside the messaging window): only the
    # token's own codes, a permission the Page lacks (#200-#299) or a 401 mean the credential
    # is refused; one buyer's bad id must not turn the workspace's Messenger Error.
    outside_window = code == 10 and error.get("error_subcode") == _OUTSIDE_WINDOW_SUBCODE
    if (
        code in _TOKEN_CODES
        or (isinstance(code, int) and 200 <= code <= 299)
        or (code == 10 and not outside_window)
        or response.status_code == 401
    ):
        return ProviderAuthFailed(
            f"{said}. Generate a new Page access token (Meta for Developers → your app → "
            "Messenger → Access Tokens) and paste it.",
            status=response.status_code,
            code=str(code),
        )
    return ProviderRejected(said, status=response.status_code, code=str(code))


class MessengerAdapter:
    def __init__(
        self,
        token: str,
        *,
        base_url: str = LIVE_GRAPH,
        throttle: Callable[[], None] | None = None,
        seconds: float = CALL_SECONDS,
    ) -> None:
        self._token = token
        self._base = f"{base_url.rstrip('/')}/{GRAPH_VERSION}"
        self._throttle = throttle or (lambda: None)
        self._seconds = seconds

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self._throttle()
        response = request(
            "Facebook",
            method,
            f"{self._base}/{path}",
            slug="messenger",
            seconds=self._seconds,
            # In a header rather than ?access_token=, so the token stays out of access logs.
            headers={"Authorization": f"Bearer {self._token}"},
            **kwargs,
        )
        if response.status_code >= 400:
            raise _graph_error(response)
        payload: dict[str, Any] = response.json()
        return payload

    def me(self) -> dict[str, Any]:
        page = self._request("GET", "me", params={"fields": "id,name"})
        return {"id": str(page.get("id")), "name": page.get("name")}

    def send_text(
        self, recipient_psid: str, text: str, *, messaging_type: str = "UPDATE"
    ) -> dict[str, Any]:
        body = {
            "recipient": {"id": recipient_psid},
            "messaging_type": messaging_type,
            "message": {"text": text},
        }
        return self._request("POST", "me/messages", json=body)


class MessengerProvider:
    info = ProviderInfo(
        slug="messenger",
        name="Facebook Messenger",
        category=Category.MESSAGING,
        description="Message buyers who wrote to your Facebook Page: confirmations and links.",
        minimum_plan=PlanTier.PRO,
        logo="/logos/messenger.svg",
        methods=(Method.API_KEY,),
        docs_url="https://developers.facebook.com/docs/messenger-platform/get-started",
    )
    credentials_model: type[BaseModel] = MessengerCredentials
    settings_model: type[BaseModel] = MessengerSettings

    def check_credentials(self, credentials: BaseModel, context: ProviderContext) -> None:
        token = expect(credentials, MessengerCredentials).page_access_token.get_secret_value()
        token = token.strip()
        if not token or " " in token or len(token) < 20:
            raise InvalidCredentials(
                "This does not look like a Page access token (a long string starting with EAA). "
                "Generate one in Meta for Developers → your app → Messenger → Access Tokens.",
                field="page_access_token",
            )

    def check_settings(self, settings: BaseModel, context: ProviderContext) -> None:
        page_id = expect(settings, MessengerSettings).page_id
        if page_id and not page_id.strip().isdigit():
            raise InvalidCredentials(
                "A Page id is a number; find it on your Page under About → Page transparency.",
                field="page_id",
            )

    def test_connection(
        self, credentials: BaseModel, settings: BaseModel, context: ProviderContext
    ) -> ConnectionTest:
        adapter = self.adapter(expect(credentials, MessengerCredentials), context)
        wanted = (expect(settings, MessengerSettings).page_id or "").strip()

        def call() -> dict[str, Any]:
            page = adapter.me()
            if wanted and page["id"] != wanted:
                raise ProviderRejected(
                    f"This token belongs to the Page {page['name']} ({page['id']}), not to Page "
                    f"{wanted}. Paste that Page's token, or change the Page id."
                )
            return page

        # The Graph API gives a Page token's permissions only through debug_token, which needs
        # an app token the console does not hold: pages_messaging shows up on the first send.
        outcome = timed(call, "Connected to Facebook.")
        if outcome.ok:
            return ConnectionTest(
                True,
                f"Connected to the Facebook Page {outcome.account.get('name')}.",
                outcome.latency_ms,
                outcome.account,
            )
        return outcome

    def adapter(
        self, credentials: MessengerCredentials, context: ProviderContext
    ) -> MessengerAdapter:
        base = f"{context.sandbox_url}/graph" if context.sandbox_url else LIVE_GRAPH
        return MessengerAdapter(
            credentials.page_access_token.get_secret_value().strip(),
            base_url=base,
            throttle=context.throttle,
        )


PROVIDER: Provider = MessengerProvider()
