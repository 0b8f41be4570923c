"""The Slack provider: bot-token checks, and "Test connection" (auth.test over HTTP) against the
sandbox."""

from __future__ import annotations

import httpx
import pytest

import backend.sandbox.slack as slack_emulator
from backend.integrations.base import InvalidCredentials
from backend.integrations.slack import PROVIDER, SlackCredentials, SlackSettings
from tests.integrations.support import OFFLINE, sandboxed
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[slack_emulator])


def creds(token: str) -> SlackCredentials:
    return SlackCredentials(bot_token=token)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("token", "says"),
    [("xoxp-123-456", "This is a user token"), ("T0123/B0123/abc", "starts with xoxb-")],
    ids=["user-token", "webhook-url-part"],
)
def test_token_that_is_not_a_bot_token_is_refused(token: str, says: str) -> None:
    with pytest.raises(InvalidCredentials) as caught:
        PROVIDER.check_credentials(creds(token), OFFLINE)
    assert caught.value.field == "bot_token"
    assert says in str(caught.value)
    assert token not in str(caught.value)


def test_connection_names_the_workspace(sandbox: RunningSandbox) -> None:
    made = httpx.post(
        f"{sandbox.url}/slack/_sandbox/tokens", json={"team": "Lakeside Events"}, timeout=10
    ).json()
    PROVIDER.check_credentials(creds(made["token"]), sandboxed(sandbox))
    result = PROVIDER.test_connection(creds(made["token"]), SlackSettings(), sandboxed(sandbox))
    assert result.ok, result.message
    assert result.message == "Connected to Slack workspace Lakeside Events as integrations-hub."
    assert result.account["team_id"] == made["team_id"]


def test_invalid_token_reports_slacks_error(sandbox: RunningSandbox) -> None:
    token = "xoxb-000000000000-000000000000-notatokentheworkspaceknows"
    result = PROVIDER.test_connection(creds(token), SlackSettings(), sandboxed(sandbox))
    assert not result.ok
    assert result.message.startswith("Slack says invalid_auth: ")
    assert "Bot User OAuth Token" in result.message
    assert token not in result.message


def test_alert_channel_defaults_to_alerts() -> None:
    assert SlackSettings().alert_channel == "#alerts"
    with pytest.raises(InvalidCredentials):
        PROVIDER.check_settings(SlackSettings(alert_channel="# two words"), OFFLINE)  # type: ignore[attr-defined]
