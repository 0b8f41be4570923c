"""The Messenger emulator over plain HTTP, as the product calls the Graph API (no official SDK)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import backend.sandbox.messenger as messenger_emulator
from tests.sandbox.conftest import MakeSandbox, RunningSandbox

PSID = "6543210987654321"


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[messenger_emulator])


def new_page(sandbox: RunningSandbox, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{sandbox.url}/graph/_sandbox/pages", json=body)
    response.raise_for_status()
    page: dict[str, Any] = response.json()
    return page


def send_body(text: str = "Your booking is confirmed.") -> dict[str, Any]:
    return {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": text}}


def test_send_succeeds_and_is_shown(sandbox: RunningSandbox) -> None:
    page = new_page(sandbox, name="Acme Events")
    assert page["page_id"].isdigit()
    url = f"{sandbox.url}/graph/v19.0/{page['page_id']}/messages"
    sent = httpx.post(url, params={"access_token": page["page_access_token"]}, json=send_body())
    assert sent.status_code == 200, sent.text
    assert sent.json()["recipient_id"] == PSID
    assert sent.json()["message_id"].startswith("m_")

    # The token may also travel as a bearer header, and the version is any vX.Y.
    bearer = {"Authorization": f"Bearer {page['page_access_token']}"}
    again = httpx.post(
        f"{sandbox.url}/graph/v21.0/me/messages", headers=bearer, json=send_body("See you soon")
    )
    assert again.status_code == 200, again.text

    me = httpx.get(
        f"{sandbox.url}/graph/v19.0/me", params={"access_token": page["page_access_token"]}
    )
    assert me.json() == {"id": page["page_id"], "name": "Acme Events"}

    stored = sandbox.ctx.store.read("messenger")["messages"]
    assert [m["message"]["text"] for m in stored] == ["Your booking is confirmed.", "See you soon"]
    inbox = httpx.get(f"{sandbox.url}/graph/_pages/messages").text
    assert "Your booking is confirmed." in inbox and PSID in inbox and "Acme Events" in inbox
    assert "See you soon" in httpx.get(sandbox.url + "/").text


def test_missing_pages_messaging_permission_is_error_230(sandbox: RunningSandbox) -> None:
    page = new_page(sandbox, permissions=["pages_show_list"])
    response = httpx.post(
        f"{sandbox.url}/graph/v19.0/{page['page_id']}/messages",
        params={"access_token": page["page_access_token"]},
        json=send_body(),
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == 230 and error["type"] == "OAuthException"
    assert error["message"] == "(#230) Requires pages_messaging permission to manage the object"
    assert error["fbtrace_id"]
    assert sandbox.ctx.store.read("messenger").get("messages", []) == []


def test_bad_token_and_bad_requests(sandbox: RunningSandbox) -> None:
    page = new_page(sandbox)
    url = f"{sandbox.url}/graph/v19.0/{page['page_id']}/messages"
    bad = httpx.post(url, params={"access_token": "EAAGnotatoken"}, json=send_body())
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == 190
    assert bad.json()["error"]["type"] == "OAuthException"
    assert "Invalid OAuth access token" in bad.json()["error"]["message"]

    token = {"access_token": page["page_access_token"]}
    no_recipient = httpx.post(url, params=token, json={"messaging_type": "RESPONSE"})
    assert no_recipient.status_code == 400
    assert no_recipient.json()["error"]["code"] == 100
    assert no_recipient.json()["error"]["message"].startswith("(#100)")
    no_message = httpx.post(url, params=token, json={"recipient": {"id": PSID}})
    assert no_message.status_code == 400 and no_message.json()["error"]["code"] == 100

    # Graph also takes form fields whose values are JSON objects.
    form = {
        "recipient": f'{{"id": "{PSID}"}}',
        "messaging_type": "UPDATE",
        "message": '{"text": "form encoded"}',
        "access_token": page["page_access_token"],
    }
    assert httpx.post(url, data=form).status_code == 200
    other_page = httpx.post(
        f"{sandbox.url}/graph/v19.0/111111111111111/messages", params=token, json=send_body()
    )
    assert other_page.status_code == 400 and other_page.json()["error"]["code"] == 100
