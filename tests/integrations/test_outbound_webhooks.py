"""Outbound webhooks: secrets, Standard Webhooks signatures (checked against the published test
vector and against the sidecar's own verifier), and the signed ping to a real local receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from backend.integrations.base import InvalidCredentials, ProviderContext
from backend.integrations.outbound_webhooks import (
    PROVIDER,
    WebhookCredentials,
    WebhookSettings,
    generate_secret,
    sign,
)
from backend.security.webhooks import verify_standard
from tests.integrations.support import LIVE, OFFLINE
from tests.support.servers import Received, WebhookReceiver

VECTOR = json.loads(Path("/work/shared/reference/webhook-vectors.json").read_text())[
    "standard_webhooks_hmac_sha256"
]


def verify(received: Received, secret: str, tolerance: int = 300) -> bool:
    """A receiver's check, written from the spec rather than from the code under test."""
    msg_id = received.headers["webhook-id"]
    timestamp = received.headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [
        value
        for version, _, value in (
            p.partition(",") for p in received.headers["webhook-signature"].split()
        )
        if version == "v1"
    ]
    return any(hmac.compare_digest(expected, value) for value in offered)


def creds(secret: str, previous: str | None = None) -> WebhookCredentials:
    return WebhookCredentials(
        signing_secret=secret,  # type: ignore[arg-type]
        previous_signing_secret=previous,  # type: ignore[arg-type]
    )


def test_generated_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    PROVIDER.check_credentials(creds(first), LIVE)


def test_sign_matches_the_standard_webhooks_vector() -> None:
    headers = sign(VECTOR["body"].encode(), VECTOR["id"], VECTOR["timestamp"], [VECTOR["secret"]])
    assert headers == {
        "webhook-id": VECTOR["id"],
        "webhook-timestamp": str(VECTOR["timestamp"]),
        "webhook-signature": VECTOR["signature"],
    }


def test_sign_during_rotation_carries_one_signature_per_secret() -> None:
    old, new = generate_secret(), generate_secret()
    headers = sign(b"{}", "msg_1", int(time.time()), [new, old])
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2 and all(e.startswith("v1,") for e in entries)
    for secret in (old, new):
        verify_standard(
            b"{}", "msg_1", headers["webhook-timestamp"], headers["webhook-signature"], [secret]
        )


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with whsec_"),
        ("whsec_not base64!", "not base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "too short (5 bytes"),
    ],
    ids=["no-prefix", "not-base64", "short"],
)
def test_malformed_secret_is_refused(secret: str, says: str) -> None:
    with pytest.raises(InvalidCredentials) as caught:
        PROVIDER.check_credentials(creds(secret), OFFLINE)
    assert caught.value.field == "signing_secret"
    assert says in str(caught.value)
    assert secret not in str(caught.value)


def test_the_vectors_24_byte_secret_is_long_enough() -> None:
    PROVIDER.check_credentials(creds(VECTOR["secret"]), LIVE)


def test_plain_http_is_refused_in_live_mode_except_on_this_machine() -> None:
    check = PROVIDER.check_settings  # type: ignore[attr-defined]
    with pytest.raises(InvalidCredentials) as caught:
        check(WebhookSettings(url="http://hooks.example.com/in"), LIVE)
    assert caught.value.field == "url"
    assert "https" in str(caught.value)
    check(WebhookSettings(url="https://hooks.example.com/in"), LIVE)
    check(WebhookSettings(url="http://127.0.0.1:8080/in"), LIVE)
    check(WebhookSettings(url="http://hooks.example.com/in"), OFFLINE)
    with pytest.raises(InvalidCredentials):
        check(WebhookSettings(url="hooks.example.com"), OFFLINE)
    with pytest.raises(InvalidCredentials) as caught:
        check(WebhookSettings(url="https://h.example.com", events=["Invoice Paid"]), LIVE)
    assert caught.value.field == "events"


def test_ping_reaches_the_receiver_signed(receiver: WebhookReceiver) -> None:
    secret, previous = generate_secret(), generate_secret()
    settings = WebhookSettings(url=f"{receiver.url}/hooks", events=["invoice.paid"])
    result = PROVIDER.test_connection(creds(secret, previous), settings, LIVE)
    assert result.ok, result.message
    assert result.message == "The endpoint answered 200 to a signed ping."
    [received] = receiver.wait_for(1)
    assert received.path == "/hooks"
    assert json.loads(received.body)["type"] == "ping"
    assert received.headers["content-type"] == "application/json"
    assert verify(received, secret) and verify(received, previous)
    assert not verify(received, generate_secret())
    # The sidecar's inbound verifier agrees.
    verify_standard(
        received.body,
        received.headers["webhook-id"],
        received.headers["webhook-timestamp"],
        received.headers["webhook-signature"],
        [secret],
    )


def test_endpoint_error_is_reported_with_its_status(receiver: WebhookReceiver) -> None:
    receiver.statuses.append(500)
    settings = WebhookSettings(url=f"{receiver.url}/hooks")
    result = PROVIDER.test_connection(creds(generate_secret()), settings, OFFLINE)
    assert not result.ok
    assert result.message == "The endpoint answered 500"


def test_endpoint_refusing_the_signature_says_to_check_the_secret(
    receiver: WebhookReceiver,
) -> None:
    receiver.statuses.append(401)
    result = PROVIDER.test_connection(
        creds(generate_secret()), WebhookSettings(url=f"{receiver.url}/x"), OFFLINE
    )
    assert not result.ok
    assert "check it has the current signing secret" in result.message


def test_unreachable_endpoint_is_not_ok() -> None:
    context = ProviderContext(live=False, sandbox_url=None)
    settings = WebhookSettings(url="http://127.0.0.1:9/hooks")  # discard port: nothing listens
    result = PROVIDER.test_connection(creds(generate_secret()), settings, context)
    assert not result.ok
    assert result.message == "The endpoint could not be reached: ConnectError"


def test_plain_http_url_in_live_mode_fails_the_test_without_sending(
    receiver: WebhookReceiver,
) -> None:
    result = PROVIDER.test_connection(
        creds(generate_secret()), WebhookSettings(url="http://hooks.example.com/in"), LIVE
    )
    assert not result.ok
    assert "https" in result.message
    assert receiver.received == []
