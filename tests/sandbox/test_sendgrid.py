"""The SendGrid emulator as the product meets it: the real SendGrid SDK against the sandbox on a
loopback port, the mailbox pages fetched over HTTP, and signed Event Webhook batches checked with
the SDK's own verifier."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from python_http_client.exceptions import (
    BadRequestsError,
    InternalServerError,
    TooManyRequestsError,
    UnauthorizedError,
)
from sendgrid import SendGridAPIClient
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from sendgrid.helpers.mail import Category, CustomArg, Mail

import backend.sandbox.sendgrid as sendgrid_emulator
from backend.sandbox.sendgrid import BAD_GRANT, DEMO_API_KEY
from tests.sandbox.conftest import MakeSandbox, RunningSandbox
from tests.support.servers import Received, WebhookReceiver

VECTORS = (
    Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "webhook-vectors.json"
)
SENDER = ("box-office@example.com", "Box Office")


def verify(public_key: str, payload: str, signature: str, timestamp: str) -> bool:
    """How the product checks SendGrid's signature: the SDK's verifier, a base64 DER key."""
    webhook = EventWebhook()
    key = webhook.convert_public_key_to_ecdsa(public_key)
    return bool(webhook.verify_signature(payload, signature, timestamp, key))


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[sendgrid_emulator])


def client(sandbox: RunningSandbox, api_key: str = DEMO_API_KEY) -> SendGridAPIClient:
    return SendGridAPIClient(api_key=api_key, host=f"{sandbox.url}/sendgrid")


def plain_mail(subject: str = "Your tickets for Friday", to: str = "guest@example.org") -> Mail:
    return Mail(
        from_email=SENDER,
        to_emails=to,
        subject=subject,
        plain_text_content="See you on Friday.",
        html_content=(
            '<p>See you on Friday. <a href="https://example.com/t?id=7&amp;s=1">Tickets</a></p>'
        ),
    )


def message_ids(sandbox: RunningSandbox, x_message_id: str) -> list[str]:
    """The mailbox entries of one send, as the mailbox page links them."""
    page = httpx.get(f"{sandbox.url}/sendgrid/_pages/mailbox", timeout=10)
    assert page.status_code == 200
    return re.findall(rf"/sendgrid/_pages/mailbox/({re.escape(x_message_id)}\.[^\"'/]+)", page.text)


def message_page(sandbox: RunningSandbox, message_id: str) -> str:
    page = httpx.get(f"{sandbox.url}/sendgrid/_pages/mailbox/{quote(message_id)}", timeout=10)
    assert page.status_code == 200
    return page.text


def wait_for_event(
    receiver: WebhookReceiver, kind: str, message_id: str, timeout: float = 10.0
) -> tuple[Received, dict[str, Any]]:
    """The first delivered event of this kind for this message, with the request that carried it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with receiver.lock:
            received = list(receiver.received)
        for request in received:
            for event in json.loads(request.body):
                if event["event"] == kind and event["sg_message_id"] == message_id:
                    return request, event
        time.sleep(0.02)
    raise AssertionError(f"no {kind} event for {message_id} reached the receiver")


def send_one(sandbox: RunningSandbox, mail: Mail | dict[str, Any]) -> tuple[str, str]:
    response = client(sandbox).send(mail)
    assert response.status_code == 202
    x_message_id = response.headers["X-Message-Id"]
    (message_id,) = message_ids(sandbox, x_message_id)
    return x_message_id, message_id


def test_send_is_accepted_with_a_message_id_and_shows_in_the_mailbox(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    response = client(sandbox).send(plain_mail())

    assert response.status_code == 202
    assert response.body == b""
    x_message_id = response.headers["X-Message-Id"]
    assert re.fullmatch(r"[A-Za-z0-9]{22}", x_message_id)
    mailbox = httpx.get(f"{sandbox.url}/sendgrid/_pages/mailbox", timeout=10).text
    assert "Your tickets for Friday" in mailbox
    assert "guest@example.org" in mailbox
    (message_id,) = message_ids(sandbox, x_message_id)
    page = message_page(sandbox, message_id)
    assert "Your tickets for Friday" in page and "box-office@example.com" in page
    _, delivered = wait_for_event(receiver, "delivered", message_id)
    assert delivered["email"] == "guest@example.org"
    _, processed = wait_for_event(receiver, "processed", message_id)
    assert processed["sg_event_id"] != delivered["sg_event_id"]


def test_dynamic_template_data_is_shown_on_the_message_page(sandbox: RunningSandbox) -> None:
    mail = Mail(from_email=SENDER, to_emails="guest@example.org")
    mail.template_id = "d-5a1e2b3c4d5e6f708192a3b4c5d6e7f8"
    mail.dynamic_template_data = {
        "first_name": "Ada <Lovelace>",
        "invoice_url": "https://pay.example.com/inv/42",
        "lines": [{"item": "Front row seat"}],
    }

    _, message_id = send_one(sandbox, mail)

    page = message_page(sandbox, message_id)
    assert "d-5a1e2b3c4d5e6f708192a3b4c5d6e7f8" in page
    assert "Ada &lt;Lovelace&gt;" in page  # shown as text, not as markup
    assert "Front row seat" in page
    # The URL is a link, through click tracking like every link in a message.
    url = "https://pay.example.com/inv/42"
    tracked = f"/sendgrid/_pages/click/{quote(message_id)}?url={quote(url, safe='')}"
    assert f'{tracked}">{url}</a>' in html.unescape(page)


def test_reading_a_message_is_not_an_open(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    _, message_id = send_one(sandbox, plain_mail())
    wait_for_event(receiver, "delivered", message_id)

    message_page(sandbox, message_id)
    message_page(sandbox, message_id)
    time.sleep(0.3)

    stored = sandbox.ctx.store.read("sendgrid")["messages"][message_id]
    assert [e["event"] for e in stored["events"]] == ["processed", "delivered"]
    assert all(e["event"] != "open" for r in receiver.received for e in json.loads(r.body))
    assert ">delivered<" in httpx.get(f"{sandbox.url}/sendgrid/_pages/mailbox", timeout=10).text


def test_unknown_api_key_gets_sendgrids_401(sandbox: RunningSandbox) -> None:
    with pytest.raises(UnauthorizedError) as caught:
        client(sandbox, "SG.not-a-key.at-all").send(plain_mail())

    assert caught.value.status_code == 401
    assert json.loads(caught.value.body) == {
        "errors": [{"message": BAD_GRANT, "field": None, "help": None}]
    }
    with pytest.raises(UnauthorizedError):
        client(sandbox, "SG.not-a-key.at-all").client.scopes.get()


def test_a_created_key_works_and_lists_its_scopes(sandbox: RunningSandbox) -> None:
    created = httpx.post(f"{sandbox.url}/sendgrid/_sandbox/api_keys", timeout=10).json()["api_key"]
    assert re.fullmatch(r"SG\.[A-Za-z0-9]{22}\.[A-Za-z0-9]{43}", created)

    response = client(sandbox, created).client.scopes.get()

    assert response.status_code == 200
    assert "mail.send" in json.loads(response.body)["scopes"]
    assert client(sandbox, created).send(plain_mail()).status_code == 202


INVALID_SENDS: dict[str, Callable[[dict[str, Any]], object]] = {
    # field SendGrid names -> how the SDK-built body is broken
    "personalizations": lambda body: body.pop("personalizations"),
    "personalizations.0.to.0.email": lambda body: body["personalizations"][0]["to"][0].pop("email"),
    "personalizations.0.to": lambda body: body["personalizations"][0].update(to=[]),
    "from": lambda body: body.pop("from"),
    "from.email": lambda body: body["from"].update(email="not an address"),
    "subject": lambda body: body.pop("subject"),
    "content": lambda body: body.update(content=[]),
}


@pytest.mark.parametrize("field", list(INVALID_SENDS))
def test_invalid_send_gets_400_naming_the_field(sandbox: RunningSandbox, field: str) -> None:
    body: dict[str, Any] = plain_mail().get()
    INVALID_SENDS[field](body)

    with pytest.raises(BadRequestsError) as caught:
        client(sandbox).send(body)

    errors = json.loads(caught.value.body)["errors"]
    assert field in [e["field"] for e in errors]
    assert all(set(e) == {"message", "field", "help"} and e["message"] for e in errors)


def test_more_than_1000_personalizations_is_400(sandbox: RunningSandbox) -> None:
    body: dict[str, Any] = plain_mail().get()
    body["personalizations"] = [{"to": [{"email": f"guest{n}@example.org"}]} for n in range(1001)]

    with pytest.raises(BadRequestsError) as caught:
        client(sandbox).send(body)

    assert json.loads(caught.value.body)["errors"] == [
        {
            "message": "The personalizations field may hold at most 1000 items.",
            "field": "personalizations",
            "help": None,
        }
    ]
    body["personalizations"].pop()
    assert client(sandbox).send(body).status_code == 202


def test_click_redirects_and_delivers_a_signed_click_event(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    _, message_id = send_one(sandbox, plain_mail())
    page = message_page(sandbox, message_id)
    (href,) = re.findall(r'href="([^"]*/_pages/click/[^"]*)"', page)

    answer = httpx.get(html.unescape(href), headers={"User-Agent": "Sandbox Mail/1.0"}, timeout=10)

    assert answer.status_code == 302
    assert answer.headers["location"] == "https://example.com/t?id=7&s=1"
    request, event = wait_for_event(receiver, "click", message_id)
    assert request.path == "/sendgrid"
    assert event["url"] == "https://example.com/t?id=7&s=1"
    assert event["email"] == "guest@example.org"
    assert event["useragent"] == "Sandbox Mail/1.0" and event["ip"] == "127.0.0.1"
    assert isinstance(event["timestamp"], int)
    assert request.body.endswith(b"\r\n")
    public_key = httpx.get(f"{sandbox.url}/sendgrid/_sandbox/public_key", timeout=10).json()
    signature = request.headers[EventWebhookHeader.SIGNATURE.lower()]
    timestamp = request.headers[EventWebhookHeader.TIMESTAMP.lower()]
    assert abs(int(timestamp) - time.time()) < 60
    payload = request.body.decode()
    assert verify(public_key["public_key"], payload, signature, timestamp)
    tampered = payload.replace("example.com/t", "evil.example/t")
    assert tampered != payload
    assert not verify(public_key["public_key"], tampered, signature, timestamp)
    assert not verify(public_key["public_key"], payload, signature, str(int(timestamp) + 1))


def test_sendgrids_published_vector_verifies() -> None:
    vector = json.loads(VECTORS.read_text())["sendgrid_signed_event_webhook"]
    args = (vector["public_key"], vector["payload"], vector["signature"], vector["timestamp"])

    assert verify(*args)
    assert not verify(vector["public_key"], vector["payload"].rstrip(), *args[2:])


def test_open_and_bounce_events_carry_merged_custom_args(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    mail = plain_mail()
    mail.custom_arg = CustomArg("workspace_id", "ws_1")
    mail.custom_arg = CustomArg("source", "bulk")
    mail.custom_arg = CustomArg("source", "invoice", p=0)  # the personalization's value wins
    mail.category = Category("invoices")
    _, message_id = send_one(sandbox, mail)
    base = f"{sandbox.url}/sendgrid/_pages/mailbox/{quote(message_id)}/events"

    opened = httpx.post(f"{base}/open", headers={"User-Agent": "Sandbox Mail/1.0"}, timeout=10)
    bounced = httpx.post(f"{base}/bounce", timeout=10)

    assert opened.status_code == bounced.status_code == 303
    _, open_event = wait_for_event(receiver, "open", message_id)
    _, bounce_event = wait_for_event(receiver, "bounce", message_id)
    _, processed = wait_for_event(receiver, "processed", message_id)
    for event in (open_event, bounce_event, processed):
        assert event["workspace_id"] == "ws_1"
        assert event["source"] == "invoice"
        assert event["category"] == "invoices"
        assert event["email"] == "guest@example.org"
    assert open_event["useragent"] == "Sandbox Mail/1.0" and open_event["ip"] == "127.0.0.1"
    assert bounce_event["type"] == "bounce" and bounce_event["reason"]
    assert (
        len({open_event["sg_event_id"], bounce_event["sg_event_id"], processed["sg_event_id"]}) == 3
    )
    assert ">bounced<" in httpx.get(f"{sandbox.url}/sendgrid/_pages/mailbox", timeout=10).text


def test_event_webhook_can_be_pointed_elsewhere_per_api_key(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    key = httpx.post(f"{sandbox.url}/sendgrid/_sandbox/api_keys", timeout=10).json()["api_key"]
    set_url = httpx.post(
        f"{sandbox.url}/sendgrid/_sandbox/event_webhook",
        json={"url": f"{receiver.url}/elsewhere"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert set_url.status_code == 200

    own = client(sandbox, key).send(plain_mail(to="own@example.org")).headers["X-Message-Id"]
    demo = client(sandbox).send(plain_mail(to="demo@example.org")).headers["X-Message-Id"]

    (own_id,) = message_ids(sandbox, own)
    (demo_id,) = message_ids(sandbox, demo)
    assert wait_for_event(receiver, "delivered", own_id)[0].path == "/elsewhere"
    assert wait_for_event(receiver, "delivered", demo_id)[0].path == "/sendgrid"


def test_outage_switch_fails_sends_in_sendgrids_shape(sandbox: RunningSandbox) -> None:
    sandbox.switch(sendgrid={"outage": "errors"})

    with pytest.raises(InternalServerError) as caught:
        client(sandbox).send(plain_mail())

    assert caught.value.status_code == 500
    (error,) = json.loads(caught.value.body)["errors"]
    assert error["field"] is None and error["help"] is None and error["message"]
    # The mailbox is for people and stays up during an outage.
    assert httpx.get(f"{sandbox.url}/sendgrid/_pages/mailbox", timeout=10).status_code == 200
    sandbox.switch(sendgrid={"outage": "none"})
    assert client(sandbox).send(plain_mail()).status_code == 202


def test_rate_limit_switch_answers_429(sandbox: RunningSandbox) -> None:
    sandbox.switch(sendgrid={"rate_limit": 1})

    assert client(sandbox).send(plain_mail()).status_code == 202
    with pytest.raises(TooManyRequestsError) as caught:
        client(sandbox).send(plain_mail())

    assert caught.value.status_code == 429
    assert json.loads(caught.value.body)["errors"][0]["field"] is None


def test_control_page_shows_keys_and_messages(sandbox: RunningSandbox) -> None:
    send_one(sandbox, plain_mail(subject="Season pass renewal"))
    public_key = httpx.get(f"{sandbox.url}/sendgrid/_sandbox/public_key", timeout=10).json()

    page = httpx.get(f"{sandbox.url}/", timeout=10).text

    assert public_key["public_key"] in page
    assert DEMO_API_KEY in page
    assert "Season pass renewal" in page


def test_accepted_sends_are_counted_beyond_the_mailbox_it_keeps(
    sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("backend.sandbox.sendgrid.routes.MAX_MESSAGES", 2)
    url = f"{sandbox.url}/sendgrid/_sandbox/accepted"
    assert httpx.get(url, timeout=10).json() == {"requests": 0, "personalizations": 0}
    many = Mail(
        from_email=SENDER,
        to_emails=[f"guest{n}@example.org" for n in range(3)],
        subject="Your tickets",
        plain_text_content="See you Friday.",
        is_multiple=True,
    )
    assert client(sandbox).send(many).status_code == 202
    assert client(sandbox).send(plain_mail()).status_code == 202
    # A refused send is not counted.
    with pytest.raises(BadRequestsError):
        client(sandbox).send({"from": {"email": SENDER[0]}, "personalizations": []})

    assert httpx.get(url, timeout=10).json() == {"requests": 2, "personalizations": 4}
    assert len(sandbox.ctx.store.read("sendgrid")["messages"]) == 2
    assert httpx.delete(url, timeout=10).json() == {"requests": 0, "personalizations": 0}
    assert httpx.get(url, timeout=10).json() == {"requests": 0, "personalizations": 0}
