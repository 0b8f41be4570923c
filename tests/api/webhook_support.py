"""Shared by the webhook tests: a seeded workspace with every webhook provider connected, the
signers each provider uses, and a count of what the inbox stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.api.app import create_app
from backend.config import Settings
from backend.connections import credentials
from backend.db import get_engine
from models import InboundEvent, Integration, IntegrationStatus, OutboxJob
from tests import factories

STRIPE_SECRET = "whsec_test_workspace_stripe_secret_0123456789"
PLATFORM_SECRET = "whsec_test_platform_secret_abcdefghijklmnop"
ZOHO_SECRET = "zoho-shared-secret-7f3a9c"
# Standard Webhooks secrets: whsec_ + base64 of the key bytes. The previous one is mid-roll.
GENERIC_SECRET = "whsec_" + base64.b64encode(b"current-generic-key-32-bytes!!!!").decode()
GENERIC_PREVIOUS = "whsec_" + base64.b64encode(b"previous-generic-key-32-bytes!!!").decode()
CRON_SECRET = "cron-secret-for-tests-0123456789"


def settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        platform_stripe_webhook_secret=PLATFORM_SECRET,
        cron_secret=CRON_SECRET,
    )


def client_for(engine: Engine) -> Iterator[TestClient]:
    app = create_app(settings())
    app.dependency_overrides[get_engine] = lambda: engine
    app.state.clock = lambda: float(PINNED_NOW)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@dataclass
class Seeded:
    slug: str
    workspace_id: int
    generic_id: int
    sendgrid_key: ec.EllipticCurvePrivateKey


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def _connect(
    session: Session,
    workspace_id: int,
    provider: str,
    secrets: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> Integration:
    row = Integration(
        workspace_id=workspace_id,
        provider=provider,
        display_name=provider.title(),
        status=IntegrationStatus.ACTIVE,
        settings=settings or {},
    )
    session.add(row)
    session.flush()
    if secrets is not None:
        credentials.seal(row, secrets)
    return row


def seed(session: Session, *, slug: str = "acme") -> Seeded:
    """A workspace with Stripe, SendGrid, Zoho Books and a generic integration connected."""
    workspace = factories.workspace(session, slug=slug)
    key = ec.generate_private_key(ec.SECP256R1())
    _connect(session, workspace.id, "stripe", {"webhook_signing_secret": STRIPE_SECRET})
    _connect(
        session, workspace.id, "sendgrid", {}, {"event_webhook_public_key": public_key_b64(key)}
    )
    _connect(session, workspace.id, "zoho_books", {"webhook_secret": ZOHO_SECRET})
    generic = _connect(
        session, workspace.id, "generic", {"signing_secrets": [GENERIC_SECRET, GENERIC_PREVIOUS]}
    )
    session.commit()
    return Seeded(slug=slug, workspace_id=workspace.id, generic_id=generic.id, sendgrid_key=key)


def stored(engine: Engine) -> tuple[int, int]:
    """(inbound events, outbox jobs): what a request left behind."""
    with Session(engine) as session:
        events = session.scalar(select(func.count()).select_from(InboundEvent))
        jobs = session.scalar(select(func.count()).select_from(OutboxJob))
    return int(events or 0), int(jobs or 0)


# -- signers -------------------------------------------------------------------------------------


def stripe_v1(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def stripe_event(event_id: str = "evt_1", event_type: str = "invoice.paid") -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "type": event_type,
            "object": "event",
            "data": {"object": {"id": "in_1", "amount_paid": 1200}},
        }
    ).encode()


def sendgrid_signature(key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str) -> str:
    der = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(der).decode()


def sendgrid_batch(*event_ids: str) -> bytes:
    return json.dumps(
        [
            {
                "email": "buyer@example.com",
                "event": "delivered",
                "sg_event_id": event_id,
                "sg_message_id": "msg.1",
                "timestamp": 1700000000,
            }
            for event_id in event_ids
        ]
    ).encode()


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


# The sidecar's clock in these tests: pinned, so that "301 s in the future" stays outside the
# window however long a test takes.
PINNED_NOW = int(time.time())


def now() -> int:
    return PINNED_NOW


def tamper(body: bytes) -> bytes:
    """The same body with one byte changed, still valid JSON."""
    index = body.index(b"1")
    return body[:index] + b"2" + body[index + 1 :]
