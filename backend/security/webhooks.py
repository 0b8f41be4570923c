"""Webhook signature verifiers: pure functions over the raw body and headers, no database.

Each raises ``SignatureError`` with a reason a person can act on and a short ``code`` for
metrics. Secret comparisons go through ``hmac.compare_digest`` and check every candidate, so the
time taken says nothing about which byte or which signature was wrong.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import time
from collections.abc import Iterable, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

DEFAULT_TOLERANCE_SECONDS = 300
# Unix seconds fit in 11 digits until the year 5138; longer "timestamps" are garbage, and
# refusing them early keeps int() away from pathological inputs.
_MAX_TIMESTAMP_DIGITS = 12


class SignatureError(Exception):
    """The request is not provably from the provider. ``reason`` is safe to log and return."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def _as_bytes(text: str) -> bytes:
    # Header values may hold any character; "replace" keeps a hostile one from raising.
    return text.encode("utf-8", "replace")


def _any_matches(expected: Iterable[bytes], candidates: Sequence[bytes]) -> bool:
    """Constant-time membership: every pair is compared, whatever matched earlier."""
    matched = False
    for want in expected:
        for got in candidates:
            matched |= hmac.compare_digest(want, got)
    return matched


def _parse_timestamp(raw: str, what: str) -> int:
    raw = raw.strip()
    if not raw or len(raw) > _MAX_TIMESTAMP_DIGITS or not (raw.isascii() and raw.isdigit()):
        raise SignatureError(f"malformed {what} (expected Unix seconds)", "malformed_header")
    return int(raw)


def _check_age(timestamp: int, tolerance: int | None, now: float | None) -> None:
    # Both directions: a timestamp far in the future would otherwise stay replayable for as
    # long as it is "in the future" (stripe's verify_header only checks the past).
    if tolerance is None:
        return
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(
            f"timestamp outside the {tolerance} s tolerance", "timestamp_out_of_tolerance"
        )


# -- Stripe ------------------------------------------------------------------------------------


def verify_stripe(
    body: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance: int | None = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a ``Stripe-Signature`` header (``t=...,v1=...``); returns its timestamp.

    Any ``v1`` signature may match any of ``secrets`` (both sides can be mid-roll). ``v0``
    signatures are ignored: they are Stripe's legacy test scheme.
    """
    if header is None or not header.strip():
        raise SignatureError("missing Stripe-Signature header", "missing_header")
    timestamp_raw: str | None = None
    v1: list[bytes] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t" and timestamp_raw is None:
            timestamp_raw = value
        elif key == "v1":
            v1.append(_as_bytes(value.strip()))
    if timestamp_raw is None:
        raise SignatureError("malformed Stripe-Signature header (no t=)", "malformed_header")
    timestamp = _parse_timestamp(timestamp_raw, "Stripe-Signature timestamp")
    if not v1:
        raise SignatureError(
            "no v1 signature in Stripe-Signature header (v0 is not accepted)", "no_match"
        )
    # Stripe signs "%d.%s" % (t, body): the integer, however the header spelled it.
    signed = str(timestamp).encode() + b"." + body
    expected = (
        hmac.new(_as_bytes(secret), signed, hashlib.sha256).hexdigest().encode()
        for secret in secrets
    )
    if not _any_matches(expected, v1):
        raise SignatureError("no signature matches", "no_match")
    _check_age(timestamp, tolerance, now)
    return timestamp


# -- SendGrid (Twilio) signed event webhook ----------------------------------------------------


@functools.lru_cache(maxsize=256)
def load_sendgrid_public_key(encoded: str) -> ec.EllipticCurvePublicKey:
    """Parse the base64 DER SubjectPublicKeyInfo SendGrid shows. Raises ValueError if unusable."""
    try:
        key = serialization.load_der_public_key(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("not a base64 DER public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an ECDSA P-256 public key")
    return key


def verify_sendgrid(
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    public_key: str,
    *,
    tolerance: int | None = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """ECDSA P-256/SHA-256 over ``timestamp + body``; returns the timestamp.

    SendGrid does not bound the timestamp's age; the ``tolerance`` window is ours.
    Raises ValueError (not SignatureError) when ``public_key`` itself is unusable.
    """
    key = load_sendgrid_public_key(public_key)
    if signature is None or not signature.strip():
        raise SignatureError(
            "missing X-Twilio-Email-Event-Webhook-Signature header", "missing_header"
        )
    if timestamp is None or not timestamp.strip():
        raise SignatureError(
            "missing X-Twilio-Email-Event-Webhook-Timestamp header", "missing_header"
        )
    seconds = _parse_timestamp(timestamp, "X-Twilio-Email-Event-Webhook-Timestamp")
    try:
        der = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(
            "malformed X-Twilio-Email-Event-Webhook-Signature (not base64)", "malformed_header"
        ) from exc
    try:
        key.verify(der, timestamp.strip().encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as exc:
        raise SignatureError("no signature matches", "no_match") from exc
    _check_age(seconds, tolerance, now)
    return seconds


# -- Shared secret in a header (Zoho) ----------------------------------------------------------


def verify_shared_secret(value: str | None, secrets: Sequence[str], *, header: str) -> None:
    """The header must equal one of ``secrets``. Both sides are hashed first so that the
    comparison takes the same time whatever the lengths."""
    if value is None or not value:
        raise SignatureError(f"missing {header} header", "missing_header")
    got = [hashlib.sha256(_as_bytes(value)).digest()]
    expected = (hashlib.sha256(_as_bytes(secret)).digest() for secret in secrets)
    if not _any_matches(expected, got):
        raise SignatureError(f"{header} does not match", "no_match")


# -- Standard Webhooks (https://www.standardwebhooks.com) ----------------------------------------


def decode_standard_secret(secret: str) -> bytes:
    """``whsec_<base64>`` (or bare base64) to key bytes. Raises ValueError if not base64."""
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("signing secret is not whsec_<base64>") from exc


def verify_standard(
    body: bytes,
    msg_id: str | None,
    timestamp: str | None,
    signature: str | None,
    secrets: Sequence[str],
    *,
    tolerance: int | None = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """HMAC-SHA256 over ``id.timestamp.body``; ``webhook-signature`` holds space-separated
    ``v1,<base64>`` entries (several during a secret roll). Returns the timestamp.

    Secrets that are not valid base64 are skipped: a misconfigured one must not stop the
    others from verifying.
    """
    for name, value in (
        ("webhook-id", msg_id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signature),
    ):
        if value is None or not value.strip():
            raise SignatureError(f"missing {name} header", "missing_header")
    assert msg_id is not None and timestamp is not None and signature is not None
    seconds = _parse_timestamp(timestamp, "webhook-timestamp")
    candidates = [
        _as_bytes(entry.partition(",")[2])
        for entry in signature.split()
        if entry.partition(",")[0] == "v1"
    ]
    if not candidates:
        raise SignatureError("no v1 entry in webhook-signature header", "malformed_header")
    keys: list[bytes] = []
    for secret in secrets:
        try:
            keys.append(decode_standard_secret(secret))
        except ValueError:
            continue
    signed = _as_bytes(msg_id) + b"." + timestamp.strip().encode() + b"." + body
    expected = (base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()) for key in keys)
    if not _any_matches(expected, candidates):
        raise SignatureError("no signature matches", "no_match")
    _check_age(seconds, tolerance, now)
    return seconds
