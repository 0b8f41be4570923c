"""The Slack emulator over plain HTTP (slack_sdk is not a dependency of the project)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import backend.sandbox.slack as slack_emulator
from tests.sandbox.conftest import MakeSandbox, RunningSandbox


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[slack_emulator])


def new_bot(sandbox: RunningSandbox) -> dict[str, Any]:
    response = httpx.post(
        f"{sandbox.url}/slack/_sandbox/tokens",
        json={"team": "Acme Events", "channels": ["#alerts", "#ops"]},
    )
    response.raise_for_status()
    bot: dict[str, Any] = response.json()
    return bot


def test_post_message_and_auth_test(sandbox: RunningSandbox) -> None:
    bot = new_bot(sandbox)
    assert bot["token"].startswith("xoxb-") and bot["channels"] == ["#alerts", "#ops"]
    bearer = {"Authorization": f"Bearer {bot['token']}"}
    posted = httpx.post(
        f"{sandbox.url}/slack/api/chat.postMessage",
        headers=bearer,
        json={"channel": "#alerts", "text": "Payment failed for invoice 42"},
    )
    assert posted.status_code == 200
    body = posted.json()
    assert body["ok"] is True and body["channel"] == bot["channel_ids"]["#alerts"]
    seconds, _, micros = body["ts"].partition(".")
    assert seconds.isdigit() and len(micros) == 6
    assert body["message"]["text"] == "Payment failed for invoice 42"

    # Form-encoded with the token as a field, channel by id, works the same.
    form = {"token": bot["token"], "channel": bot["channel_ids"]["#ops"], "text": "second"}
    second = httpx.post(f"{sandbox.url}/slack/api/chat.postMessage", data=form).json()
    assert second["ok"] is True and second["ts"] > body["ts"]

    who = httpx.post(f"{sandbox.url}/slack/api/auth.test", headers=bearer).json()
    assert who["ok"] is True and who["url"] == "https://acme-events.slack.com/"
    assert who["team"] == "Acme Events" and who["team_id"].startswith("T")
    assert who["user_id"].startswith("U") and who["bot_id"].startswith("B")

    control = httpx.get(sandbox.url + "/").text
    assert "Payment failed for invoice 42" in control and "#alerts" in control


def test_invalid_auth_not_authed_and_channel_not_found(sandbox: RunningSandbox) -> None:
    bot = new_bot(sandbox)
    url = f"{sandbox.url}/slack/api/chat.postMessage"
    message = {"channel": "#alerts", "text": "hello"}
    wrong = httpx.post(url, headers={"Authorization": "Bearer xoxb-nope"}, json=message)
    assert wrong.status_code == 200
    assert wrong.json() == {"ok": False, "error": "invalid_auth"}
    assert httpx.post(url, json=message).json() == {"ok": False, "error": "not_authed"}

    bearer = {"Authorization": f"Bearer {bot['token']}"}
    nowhere = httpx.post(url, headers=bearer, json={"channel": "#random", "text": "hello"})
    assert nowhere.status_code == 200
    assert nowhere.json() == {"ok": False, "error": "channel_not_found"}
    empty = httpx.post(url, headers=bearer, json={"channel": "#alerts"})
    assert empty.json() == {"ok": False, "error": "no_text"}
    assert sandbox.ctx.store.read("slack").get("messages", []) == []


def test_rate_limit_answers_429_with_retry_after(sandbox: RunningSandbox) -> None:
    bot = new_bot(sandbox)
    sandbox.switch(slack={"rate_limit": 1})
    bearer = {"Authorization": f"Bearer {bot['token']}"}
    url = f"{sandbox.url}/slack/api/chat.postMessage"
    message = {"channel": "#alerts", "text": "burst"}
    answers = [httpx.post(url, headers=bearer, json=message) for _ in range(3)]
    assert answers[0].status_code == 200 and answers[0].json()["ok"] is True
    limited = answers[-1]
    assert limited.status_code == 429
    assert limited.json() == {"ok": False, "error": "ratelimited"}
    assert int(limited.headers["Retry-After"]) >= 1

    sandbox.switch(slack={"rate_limit": 0, "outage": "errors"})
    down = httpx.post(url, headers=bearer, json=message)
    assert down.status_code == 500 and down.json() == {"ok": False, "error": "fatal_error"}


def test_posted_messages_are_listed_with_their_metadata(sandbox: RunningSandbox) -> None:
    bot = new_bot(sandbox)
    other = new_bot(sandbox)
    url = f"{sandbox.url}/slack/api/chat.postMessage"
    metadata = {"event_type": "hub_alert", "event_payload": {"key": "alert:1:1:slack"}}
    for token, channel, text in (
        (bot["token"], "#alerts", "first"),
        (bot["token"], "#ops", "second"),
        (other["token"], "#alerts", "elsewhere"),
    ):
        answer = httpx.post(
            url,
            headers={"Authorization": f"Bearer {token}"},
            json={"channel": channel, "text": text, "metadata": metadata},
        ).json()
        assert answer["ok"] is True and answer["message"]["metadata"] == metadata
    # Form-encoded calls send the metadata as JSON text; a wrong shape is Slack's error.
    form = {"token": bot["token"], "channel": "#alerts", "text": "third"}
    assert httpx.post(url, data=form | {"metadata": '{"event_type": "x"}'}).json()["ok"]
    wrong = httpx.post(url, data=form | {"metadata": "not json"}).json()
    assert wrong == {"ok": False, "error": "invalid_metadata_format"}

    listed = httpx.get(f"{sandbox.url}/slack/_sandbox/messages").json()["messages"]
    assert [m["text"] for m in listed] == ["first", "second", "elsewhere", "third"]
    assert listed[0]["metadata"] == metadata and listed[3]["metadata"]["event_payload"] == {}
    mine = httpx.get(
        f"{sandbox.url}/slack/_sandbox/messages",
        params={"team": bot["team_id"], "channel": "#alerts"},
    ).json()["messages"]
    assert [m["text"] for m in mine] == ["first", "third"]
    # Listing is not a Web API call: the request counts leave it out.
    assert httpx.get(f"{sandbox.url}/_sandbox/requests").json()["slack"]["requests"] == 5
