"""Every call the product makes to Slack's Web API (plain HTTP: the project does not ship
slack_sdk), and the provider's declaration (``PROVIDER``): a bot token and an alert channel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    InvalidCredentials,
    Method,
    PlanTier,
    Provider,
    ProviderContext,
    ProviderInfo,
    timed,
)
from backend.integrations.errors import ProviderAuthFailed, ProviderRejected

LIVE_API = "https://slack.com/api"

# What to do about the errors an operator can fix; Slack's code is always shown too.
_ADVICE = {
    "invalid_auth": "the token is not valid; copy the Bot User OAuth Token (xoxb-…) again from "
    "your Slack app's OAuth & Permissions page",
    "not_authed": "no token was sent; paste the Bot User OAuth Token (xoxb-…)",
    "account_inactive": "the app was uninstalled or its user deactivated; reinstall the app",
    "token_revoked": "the token was revoked; reinstall the app and paste the new token",
    "missing_scope": "the app lacks a scope; add chat:write under OAuth & Permissions and "
    "reinstall",
    "channel_not_found": "the channel does not exist or the bot is not in it; /invite the bot",
    "not_in_channel": "the bot is not in the channel; /invite it there",
}
_AUTH_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "missing_scope"}


class SlackCredentials(BaseModel):
    bot_token: SecretStr = Field(
        description="Bot User OAuth Token (xoxb-…) from your Slack app's OAuth & Permissions."
    )


class SlackSettings(BaseModel):
    alert_channel: str = Field(default="#alerts", min_length=1, max_length=80)


class SlackAdapter:
    def __init__(
        self,
        token: str,
        *,
        base_url: str = LIVE_API,
        throttle: Callable[[], None] | None = None,
        seconds: float = CALL_SECONDS,
    ) -> None:
        self._token = token
        self._base = base_url.rstrip("/")
        self._throttle = throttle or (lambda: None)
        self._seconds = seconds

    def call(self, method: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """One Web API method. Slack answers errors with HTTP 200 and ``ok: false``."""
        self._throttle()
        response = request(
            "Slack",
            "POST",
            f"{self._base}/{method}",
            slug="slack",
            seconds=self._seconds,
            json=args or {},
            # The token goes in the header, never in a URL that proxies would log.
            headers={"Authorization": f"Bearer {self._token}"},
        )
        try:
            payload: dict[str, Any] = response.json()
        except ValueError:
            payload = {}
        raise_for_http_status("Slack", response, str(payload.get("error") or "no details"))
        if not payload.get("ok"):
            error = str(payload.get("error") or "unknown_error")
            advice = _ADVICE.get(error)
            message = f"Slack says {error}: {advice}" if advice else f"Slack says {error}"
            if error in _AUTH_ERRORS:
                raise ProviderAuthFailed(message, code=error)
            raise ProviderRejected(message, code=error)
        return payload

    def auth_test(self) -> dict[str, Any]:
        answer = self.call("auth.test")
        return {
            "team": answer.get("team"),
            "team_id": answer.get("team_id"),
            "user": answer.get("user"),
            "url": answer.get("url"),
        }

    def post_message(self, channel: str, text: str, **extra: Any) -> dict[str, Any]:
        return self.call("chat.postMessage", {"channel": channel, "text": text, **extra})


class SlackProvider:
    info = ProviderInfo(
        slug="slack",
        name="Slack",
        category=Category.MESSAGING,
        description="Post alerts (failed jobs, disputes, payouts) to a Slack channel.",
        minimum_plan=PlanTier.PRO,
        logo="/logos/slack.svg",
        methods=(Method.API_KEY,),
        docs_url="https://api.slack.com/authentication/token-types#bot",
    )
    credentials_model: type[BaseModel] = SlackCredentials
    settings_model: type[BaseModel] = SlackSettings

    def check_credentials(self, credentials: BaseModel, context: ProviderContext) -> None:
        token = expect(credentials, SlackCredentials).bot_token.get_secret_value().strip()
        if token.startswith(("xoxp-", "xoxe.", "xoxa-")):
            raise InvalidCredentials(
                "This is a user token. Paste the Bot User OAuth Token that starts with xoxb- "
                "from your app's OAuth & Permissions page.",
                field="bot_token",
            )
        if not token.startswith("xoxb-"):
            raise InvalidCredentials(
                "A Slack bot token starts with xoxb-. Copy the Bot User OAuth Token from your "
                "app's OAuth & Permissions page.",
                field="bot_token",
            )

    def check_settings(self, settings: BaseModel, context: ProviderContext) -> None:
        channel = expect(settings, SlackSettings).alert_channel.strip()
        if " " in channel:
            raise InvalidCredentials(
                "A channel is a name like #alerts or an id like C0123456789.",
                field="alert_channel",
            )

    def test_connection(
        self, credentials: BaseModel, settings: BaseModel, context: ProviderContext
    ) -> ConnectionTest:
        adapter = self.adapter(expect(credentials, SlackCredentials), context)
        outcome = timed(adapter.auth_test, "Connected to Slack.")
        if outcome.ok:
            team = outcome.account.get("team")
            user = outcome.account.get("user")
            return ConnectionTest(
                True,
                f"Connected to Slack workspace {team} as {user}.",
                outcome.latency_ms,
                outcome.account,
            )
        return outcome

    def adapter(self, credentials: SlackCredentials, context: ProviderContext) -> SlackAdapter:
        base = f"{context.sandbox_url}/slack/api" if context.sandbox_url else LIVE_API
        return SlackAdapter(
            credentials.bot_token.get_secret_value().strip(),
            base_url=base,
            throttle=context.throttle,
        )


PROVIDER: Provider = SlackProvider()
