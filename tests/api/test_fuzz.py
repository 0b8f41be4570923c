"""Fuzz the sidecar from its own OpenAPI document: nothing a client sends may produce a 5xx.

Runs on SQLite with a seeded workspace; each generated case is sent as generated and again
addressed to the seeded receivers, so the lookups, verifiers and parsers behind them run too.
Bounded (max_examples) to stay well under a minute.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.core import NotSet
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.api.app import create_app
from backend.db import get_engine, make_engine
from tests.api.webhook_support import (
    GENERIC_SECRET,
    PINNED_NOW,
    PLATFORM_SECRET,
    STRIPE_SECRET,
    ZOHO_SECRET,
    now,
    seed,
    sendgrid_signature,
    standard_signature,
    stripe_v1,
)
from tests.api.webhook_support import settings as sidecar_settings


@dataclass
class Receivers:
    path_parameters: dict[str, str]
    sendgrid_key: ec.EllipticCurvePrivateKey


Signer = Callable[[bytes, Receivers], dict[str, str]]

# The schema is loaded at import (schemathesis 4.32's fixture-based loader does not run under
# pytest 9), so the app reaches each test's database through this holder.
_database: dict[str, Engine] = {}
app = create_app(sidecar_settings())
app.dependency_overrides[get_engine] = lambda: _database["engine"]
app.state.clock = lambda: float(PINNED_NOW)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
client = TestClient(app, raise_server_exceptions=False)


def _stripe(secret: str) -> Signer:
    return lambda raw, _: {"Stripe-Signature": f"t={now()},v1={stripe_v1(raw, secret, now())}"}


def _sendgrid(raw: bytes, receivers: Receivers) -> dict[str, str]:
    return {
        "X-Twilio-Email-Event-Webhook-Signature": sendgrid_signature(
            receivers.sendgrid_key, raw, str(now())
        ),
        "X-Twilio-Email-Event-Webhook-Timestamp": str(now()),
    }


def _generic(raw: bytes, _: Receivers) -> dict[str, str]:
    msg_id = "msg_" + hashlib.sha256(raw).hexdigest()[:24]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(now()),
        "webhook-signature": standard_signature(GENERIC_SECRET, msg_id, now(), raw),
    }


# Signed copies of each generated body get past verification, so the parsers and the inbox
# see the fuzzer's bodies too.
SIGNERS: dict[str, Signer] = {
    "/webhooks/stripe/{workspace}": _stripe(STRIPE_SECRET),
    "/webhooks/stripe": _stripe(PLATFORM_SECRET),
    "/webhooks/sendgrid/{workspace}": _sendgrid,
    "/webhooks/zoho/{workspace}": lambda raw, _: {"X-Zoho-Secret": ZOHO_SECRET},
    "/webhooks/generic/{integration}": _generic,
}


def _raw(body: Any) -> bytes:
    """The generated body as bytes; the fuzzer sometimes sends raw bytes or text on purpose."""
    if isinstance(body, NotSet):
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return json.dumps(body).encode()


@pytest.fixture
def receivers(sqlite_template: Path, tmp_path: Path) -> Iterator[Receivers]:
    """A fresh SQLite database with the seeded workspace, for the app to use."""
    path = tmp_path / "fuzz.db"
    shutil.copyfile(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    with Session(engine, expire_on_commit=False) as session:
        seeded = seed(session)
    _database["engine"] = engine
    yield Receivers(
        {"workspace": seeded.slug, "integration": str(seeded.generic_id)}, seeded.sendgrid_key
    )
    _database.pop("engine")
    engine.dispose()


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_causes_a_server_error(case: Any, receivers: Receivers) -> None:
    response = case.call()
    assert response.status_code < 500, response.text
    signer = SIGNERS.get(case.path)
    if case.method != "POST" or signer is None:
        return
    # Again, addressed to the seeded receivers: unsigned, then signed.
    path = case.path.format(
        **{name: receivers.path_parameters[name] for name in case.path_parameters or {}}
    )
    raw = _raw(case.body)
    plain = {"content-type": "application/json"}
    for headers in (plain, {**plain, **signer(raw, receivers)}):
        again = client.post(path, content=raw, headers=headers)
        assert again.status_code < 500, again.text
