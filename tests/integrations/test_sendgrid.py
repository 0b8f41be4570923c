"""The SendGrid provider: key and settings checks, and "Test connection" through the sendgrid SDK
(GET /v3/scopes) against the sandbox."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI

import backend.sandbox.sendgrid as sendgrid_emulator
from backend.integrations.base import InvalidCredentials, ProviderContext
from backend.integrations.sendgrid import (
    NO_MAIL_SEND,
    PROVIDER,
    SendGridCredentials,
    SendGridSettings,
)
from tests.integrations.support import OFFLINE, sandboxed
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox
from tests.support.servers import serve

VECTORS = json.loads(Path("/work/shared/reference/webhook-vectors.json").read_text())
SENDGRID_PUBLIC_KEY = VECTORS["sendgrid_signed_event_webhook"]["public_key"]


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[sendgrid_emulator])


def new_key(sandbox: RunningSandbox) -> str:
    response = httpx.post(f"{sandbox.url}/sendgrid/_sandbox/api_keys", timeout=10)
    response.raise_for_status()
    key: str = response.json()["api_key"]
    return key


def creds(key: str) -> SendGridCredentials:
    return SendGridCredentials(api_key=key)  # type: ignore[arg-type]


def public_key_b64(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def test_key_without_sg_prefix_is_refused() -> None:
    with pytest.raises(InvalidCredentials) as caught:
        PROVIDER.check_credentials(creds("xoxb-not-sendgrid"), OFFLINE)
    assert caught.value.field == "api_key"
    assert "starts with SG." in str(caught.value)


def test_event_webhook_public_key_from_sendgrid_is_accepted() -> None:
    PROVIDER.check_settings(  # type: ignore[attr-defined]
        SendGridSettings(event_webhook_public_key=SENDGRID_PUBLIC_KEY), OFFLINE
    )
    fresh = public_key_b64(ec.generate_private_key(ec.SECP256R1()))
    PROVIDER.check_settings(SendGridSettings(event_webhook_public_key=fresh), OFFLINE)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("not base64 at all!", "not the Event Webhook verification key"),
        (base64.b64encode(b"random bytes, not DER").decode(), "not the Event Webhook"),
        (
            public_key_b64(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            "not an EC P-256 key",
        ),
        (public_key_b64(ec.generate_private_key(ec.SECP384R1())), "not an EC P-256 key"),
    ],
    ids=["garbage", "not-der", "rsa", "p384"],
)
def test_event_webhook_public_key_that_is_not_p256_is_refused(value: str, says: str) -> None:
    with pytest.raises(InvalidCredentials) as caught:
        PROVIDER.check_settings(  # type: ignore[attr-defined]
            SendGridSettings(event_webhook_public_key=value), OFFLINE
        )
    assert caught.value.field == "event_webhook_public_key"
    assert says in str(caught.value)


def test_sender_must_be_an_email_address() -> None:
    with pytest.raises(InvalidCredentials) as caught:
        PROVIDER.check_settings(SendGridSettings(from_email="Lakeside"), OFFLINE)  # type: ignore[attr-defined]
    assert caught.value.field == "from_email"


def test_connection_with_a_sandbox_key(sandbox: RunningSandbox) -> None:
    key = new_key(sandbox)
    PROVIDER.check_credentials(creds(key), sandboxed(sandbox))
    result = PROVIDER.test_connection(creds(key), SendGridSettings(), sandboxed(sandbox))
    assert result.ok, result.message
    assert result.message == "Connected to SendGrid: this key can send mail."


def test_unknown_key_reports_what_sendgrid_said(sandbox: RunningSandbox) -> None:
    key = "SG.unknownunknownunknown.unknownunknownunknownunknownunknownunknown1"
    result = PROVIDER.test_connection(creds(key), SendGridSettings(), sandboxed(sandbox))
    assert not result.ok
    assert "SendGrid refused the API key" in result.message
    assert sendgrid_emulator.BAD_GRANT in result.message
    assert key not in result.message


@pytest.fixture
def scopes_without_mail_send() -> Iterator[str]:
    """Stands in for SendGrid answering a key made without Mail Send (the sandbox gives every
    key the same scopes): the SDK reaches it exactly as it reaches the sandbox."""
    app = FastAPI()

    @app.get("/sendgrid/v3/scopes")
    def scopes() -> dict[str, list[str]]:
        return {"scopes": ["mail.batch.read", "user.webhooks.event.settings.read"]}

    with serve(app) as url:
        yield url


def test_key_without_mail_send_is_not_ok(scopes_without_mail_send: str) -> None:
    context = ProviderContext(live=False, sandbox_url=scopes_without_mail_send)
    key = "SG.restrictedrestricted.restrictedrestrictedrestrictedrestricted1"
    result = PROVIDER.test_connection(creds(key), SendGridSettings(), context)
    assert not result.ok
    assert result.message == NO_MAIL_SEND == "This key cannot send mail: give it Mail Send access"


def test_send_mail_reaches_the_sandbox_mailbox_one_entry_per_recipient(
    sandbox: RunningSandbox,
) -> None:
    adapter = PROVIDER.adapter(creds(new_key(sandbox)), sandboxed(sandbox))  # type: ignore[attr-defined]
    message_id = adapter.send_mail(
        from_email="alerts@lakeside.example",
        from_name="Integrations Hub",
        to=["owner@lakeside.example", "admin@lakeside.example"],
        subject="New alert",
        text="Stripe is failing",
        custom_args={"alert": "alert:1:1:email"},
    )
    assert message_id
    mailbox = sandbox.ctx.store.read("sendgrid")["messages"].values()
    sent = [m for m in mailbox if m["x_message_id"] == message_id]
    assert sorted(m["to"]["email"] for m in sent) == [
        "admin@lakeside.example",
        "owner@lakeside.example",
    ]
    assert {m["text"] for m in sent} == {"Stripe is failing"}
    assert {m["custom_args"]["alert"] for m in sent} == {"alert:1:1:email"}
