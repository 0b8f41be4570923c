"""The signature verifiers on their own: published known-answer vectors, and the edges of each
scheme (rolls, legacy schemes, the time window both ways)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import stripe
from cryptography.hazmat.primitives.asymmetric import ec

from backend.security import webhooks as sigs
from backend.security.webhooks import SignatureError
from tests.api.webhook_support import (
    public_key_b64,
    sendgrid_signature,
    standard_signature,
    stripe_v1,
)

VECTORS = json.loads(
    (
        Path(__file__).resolve().parents[3] / "shared" / "reference" / "webhook-vectors.json"
    ).read_text()
)
SECRET = "whsec_unit"
NOW = 1_700_000_000
BODY = b'{"id":"evt_1","type":"invoice.paid"}'


# -- known answers -------------------------------------------------------------------------------


def test_sendgrid_published_vector_verifies() -> None:
    vector = VECTORS["sendgrid_signed_event_webhook"]
    seconds = sigs.verify_sendgrid(
        vector["payload"].encode(),
        vector["signature"],
        vector["timestamp"],
        vector["public_key"],
        now=int(vector["timestamp"]),
    )
    assert seconds == int(vector["timestamp"])


def test_sendgrid_published_vector_fails_without_its_trailing_crlf() -> None:
    vector = VECTORS["sendgrid_signed_event_webhook"]
    with pytest.raises(SignatureError, match="no signature matches"):
        sigs.verify_sendgrid(
            vector["payload"].rstrip().encode(),
            vector["signature"],
            vector["timestamp"],
            vector["public_key"],
            tolerance=None,
        )


def test_sendgrid_published_vector_is_too_old_today() -> None:
    vector = VECTORS["sendgrid_signed_event_webhook"]
    with pytest.raises(SignatureError, match="300 s tolerance"):
        sigs.verify_sendgrid(
            vector["payload"].encode(),
            vector["signature"],
            vector["timestamp"],
            vector["public_key"],
        )


def test_standard_webhooks_published_vector_verifies() -> None:
    vector = VECTORS["standard_webhooks_hmac_sha256"]
    seconds = sigs.verify_standard(
        vector["body"].encode(),
        vector["id"],
        str(vector["timestamp"]),
        vector["signature"],
        [vector["secret"]],
        now=vector["timestamp"],
    )
    assert seconds == vector["timestamp"]


def test_standard_webhooks_vector_matches_our_test_signer() -> None:
    vector = VECTORS["standard_webhooks_hmac_sha256"]
    assert (
        standard_signature(
            vector["secret"], vector["id"], vector["timestamp"], vector["body"].encode()
        )
        == vector["signature"]
    )


def test_stripe_sdk_signed_header_verifies() -> None:
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET, NOW)
    assert sigs.verify_stripe(BODY, header, [SECRET], now=NOW) == NOW


# -- Stripe --------------------------------------------------------------------------------------


def test_stripe_accepts_any_matching_v1_among_several() -> None:
    header = f"t={NOW},v1={'0' * 64},v1={stripe_v1(BODY, SECRET, NOW)},v0={'1' * 64}"
    sigs.verify_stripe(BODY, header, [SECRET], now=NOW)


def test_stripe_accepts_either_secret_during_our_roll() -> None:
    header = f"t={NOW},v1={stripe_v1(BODY, 'whsec_old', NOW)}"
    sigs.verify_stripe(BODY, header, ["whsec_new", "whsec_old"], now=NOW)


def test_stripe_refuses_a_v0_only_header() -> None:
    header = f"t={NOW},v0={stripe_v1(BODY, SECRET, NOW)}"
    with pytest.raises(SignatureError, match="v0 is not accepted"):
        sigs.verify_stripe(BODY, header, [SECRET], now=NOW)


@pytest.mark.parametrize("skew", [-301, 301])
def test_stripe_refuses_timestamps_outside_the_window_both_ways(skew: int) -> None:
    t = NOW + skew
    with pytest.raises(SignatureError, match="timestamp outside the 300 s tolerance") as err:
        sigs.verify_stripe(BODY, f"t={t},v1={stripe_v1(BODY, SECRET, t)}", [SECRET], now=NOW)
    assert err.value.code == "timestamp_out_of_tolerance"


@pytest.mark.parametrize("skew", [-300, 300])
def test_stripe_accepts_the_window_edges(skew: int) -> None:
    t = NOW + skew
    sigs.verify_stripe(BODY, f"t={t},v1={stripe_v1(BODY, SECRET, t)}", [SECRET], now=NOW)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing Stripe-Signature header"),
        ("", "missing Stripe-Signature header"),
        ("garbage", "no t="),
        ("t=soon,v1=abc", "malformed Stripe-Signature timestamp"),
        (f"t={'9' * 40},v1=abc", "malformed Stripe-Signature timestamp"),
        (f"t={NOW}", "no v1 signature"),
        (f"t={NOW},v1=ünïcödé", "no signature matches"),
    ],
)
def test_stripe_malformed_headers_say_why(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        sigs.verify_stripe(BODY, header, [SECRET], now=NOW)


# -- SendGrid ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_sendgrid_refuses_another_keys_signature(sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    signature = sendgrid_signature(other, BODY, str(NOW))
    with pytest.raises(SignatureError, match="no signature matches"):
        sigs.verify_sendgrid(BODY, signature, str(NOW), public_key_b64(sendgrid_key), now=NOW)


def test_sendgrid_signature_covers_the_timestamp(sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    signature = sendgrid_signature(sendgrid_key, BODY, str(NOW))
    with pytest.raises(SignatureError, match="no signature matches"):
        sigs.verify_sendgrid(BODY, signature, str(NOW + 1), public_key_b64(sendgrid_key), now=NOW)


@pytest.mark.parametrize("signature", ["not base64!", base64.b64encode(b"\x30\x02xx").decode()])
def test_sendgrid_malformed_signatures_are_refused(
    sendgrid_key: ec.EllipticCurvePrivateKey, signature: str
) -> None:
    with pytest.raises(SignatureError):
        sigs.verify_sendgrid(BODY, signature, str(NOW), public_key_b64(sendgrid_key), now=NOW)


@pytest.mark.parametrize("key", ["", "not base64", base64.b64encode(b"junk").decode()])
def test_sendgrid_unusable_public_key_is_a_configuration_error(key: str) -> None:
    with pytest.raises(ValueError, match="key"):
        sigs.verify_sendgrid(BODY, "c2ln", str(NOW), key, now=NOW)


def test_sendgrid_refuses_a_non_p256_key() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ValueError, match="P-256"):
        sigs.load_sendgrid_public_key(public_key_b64(key))  # type: ignore[arg-type]


# -- shared secret ---------------------------------------------------------------------------


def test_shared_secret_matches_any_configured() -> None:
    sigs.verify_shared_secret("b", ["a", "b"], header="X-Zoho-Secret")


@pytest.mark.parametrize(
    ("value", "reason"),
    [(None, "missing"), ("", "missing"), ("a" * 500, "does not match"), ("ünï", "does not match")],
)
def test_shared_secret_refusals(value: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        sigs.verify_shared_secret(value, ["s3cret"], header="X-Zoho-Secret")


# -- Standard Webhooks ---------------------------------------------------------------------------

STD_SECRET = "whsec_" + base64.b64encode(b"k" * 24).decode()


def test_standard_accepts_one_valid_entry_among_several() -> None:
    good = standard_signature(STD_SECRET, "msg_1", NOW, BODY)
    header = f"v1,{base64.b64encode(b'x' * 32).decode()} v1a,ignored {good}"
    sigs.verify_standard(BODY, "msg_1", str(NOW), header, [STD_SECRET], now=NOW)


def test_standard_skips_an_undecodable_secret() -> None:
    good = standard_signature(STD_SECRET, "msg_1", NOW, BODY)
    sigs.verify_standard(BODY, "msg_1", str(NOW), good, ["whsec_***", STD_SECRET], now=NOW)


def test_standard_signature_binds_the_id() -> None:
    good = standard_signature(STD_SECRET, "msg_1", NOW, BODY)
    with pytest.raises(SignatureError, match="no signature matches"):
        sigs.verify_standard(BODY, "msg_2", str(NOW), good, [STD_SECRET], now=NOW)


@pytest.mark.parametrize("skew", [-301, 301])
def test_standard_refuses_timestamps_outside_the_window(skew: int) -> None:
    t = NOW + skew
    good = standard_signature(STD_SECRET, "msg_1", t, BODY)
    with pytest.raises(SignatureError, match="300 s tolerance"):
        sigs.verify_standard(BODY, "msg_1", str(t), good, [STD_SECRET], now=NOW)


@pytest.mark.parametrize(
    ("msg_id", "timestamp", "signature", "reason"),
    [
        (None, str(NOW), "v1,abc", "missing webhook-id"),
        ("msg_1", None, "v1,abc", "missing webhook-timestamp"),
        ("msg_1", str(NOW), None, "missing webhook-signature"),
        ("msg_1", "1e9", "v1,abc", "malformed webhook-timestamp"),
        ("msg_1", str(NOW), "v2,abc", "no v1 entry"),
        ("msg_1", str(NOW), "v1,abc", "no signature matches"),
    ],
)
def test_standard_malformed_headers_say_why(
    msg_id: str | None, timestamp: str | None, signature: str | None, reason: str
) -> None:
    with pytest.raises(SignatureError, match=reason):
        sigs.verify_standard(BODY, msg_id, timestamp, signature, [STD_SECRET], now=NOW)
