"""Standard Webhooks through the sidecar, addressed by integration id, including a secret roll."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from models import InboundEvent, Integration
from tests.api.webhook_support import (
    GENERIC_PREVIOUS,
    GENERIC_SECRET,
    Seeded,
    now,
    standard_signature,
    stored,
    tamper,
)

BODY = json.dumps({"type": "order.created", "data": {"order": 1001}}).encode()
MSG = "msg_2mBAvs4kyKhyKhMIcEpKbY1pH3B"
Build = Callable[[], tuple[bytes, dict[str, str]]]
OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="


def _signed(
    secret: str = GENERIC_SECRET, t: int | None = None, body: bytes = BODY, msg_id: str = MSG
) -> dict[str, str]:
    t = now() if t is None else t
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(t),
        "webhook-signature": standard_signature(secret, msg_id, t, body),
    }


def _without(name: str) -> dict[str, str]:
    headers = _signed()
    del headers[name]
    return headers


MATRIX: list[tuple[str, Build, int, str]] = [
    ("valid", lambda: (BODY, _signed()), 200, ""),
    ("previous_secret_during_roll", lambda: (BODY, _signed(GENERIC_PREVIOUS)), 200, ""),
    ("one_byte_changed", lambda: (tamper(BODY), _signed()), 401, "no signature matches"),
    ("wrong_secret", lambda: (BODY, _signed(OTHER_SECRET)), 401, "no signature matches"),
    ("missing_id", lambda: (BODY, _without("webhook-id")), 401, "missing webhook-id header"),
    (
        "missing_timestamp",
        lambda: (BODY, _without("webhook-timestamp")),
        401,
        "missing webhook-timestamp header",
    ),
    (
        "missing_signature",
        lambda: (BODY, _without("webhook-signature")),
        401,
        "missing webhook-signature header",
    ),
    (
        "malformed_signature",
        lambda: (BODY, {**_signed(), "webhook-signature": "sig"}),
        401,
        "no v1 entry",
    ),
    (
        "several_one_valid",
        lambda: (
            BODY,
            {
                **_signed(),
                "webhook-signature": ("v1,AAAA v1a,BBBB " + _signed()["webhook-signature"]),
            },
        ),
        200,
        "",
    ),
    (
        "301_s_old",
        lambda: (BODY, _signed(t=now() - 301)),
        401,
        "timestamp outside the 300 s tolerance",
    ),
    (
        "301_s_future",
        lambda: (BODY, _signed(t=now() + 301)),
        401,
        "timestamp outside the 300 s tolerance",
    ),
]


@pytest.mark.parametrize(
    ("name", "build", "status", "reason"), MATRIX, ids=[case[0] for case in MATRIX]
)
def test_signature_matrix(
    sidecar: TestClient,
    engine: Engine,
    seeded: Seeded,
    name: str,
    build: Build,
    status: int,
    reason: str,
) -> None:
    body, headers = build()
    response = sidecar.post(f"/webhooks/generic/{seeded.generic_id}", content=body, headers=headers)
    assert response.status_code == status, response.text
    if status == 200:
        assert stored(engine) == (1, 1)
    else:
        assert reason in response.json()["detail"]
        assert stored(engine) == (0, 0)


def test_message_is_stored_by_its_webhook_id(
    sidecar: TestClient, session: Session, seeded: Seeded
) -> None:
    url = f"/webhooks/generic/{seeded.generic_id}"
    assert sidecar.post(url, content=BODY, headers=_signed()).json()["duplicate"] is False
    assert sidecar.post(url, content=BODY, headers=_signed()).json()["duplicate"] is True
    event = session.scalars(select(InboundEvent)).one()
    assert (event.provider, event.external_id, event.event_type, event.workspace_id) == (
        "generic",
        f"{seeded.generic_id}:{MSG}",
        "order.created",
        seeded.workspace_id,
    )


def test_type_defaults_to_unknown(sidecar: TestClient, session: Session, seeded: Seeded) -> None:
    body = b'{"data": 1}'
    sidecar.post(f"/webhooks/generic/{seeded.generic_id}", content=body, headers=_signed(body=body))
    assert session.scalars(select(InboundEvent.event_type)).one() == "unknown"


def test_overlong_webhook_id_is_400(sidecar: TestClient, engine: Engine, seeded: Seeded) -> None:
    headers = _signed(msg_id="m" * 129)
    response = sidecar.post(f"/webhooks/generic/{seeded.generic_id}", content=BODY, headers=headers)
    assert response.status_code == 400
    assert stored(engine) == (0, 0)


@pytest.mark.parametrize("integration", ["999999", "abc", "-1", "0", "99999999999999999999"])
def test_unknown_integration_is_404(sidecar: TestClient, engine: Engine, integration: str) -> None:
    response = sidecar.post(f"/webhooks/generic/{integration}", content=BODY, headers=_signed())
    assert response.status_code == 404
    assert stored(engine) == (0, 0)


def test_integration_without_signing_secrets_is_404(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    stripe_id = session.scalars(
        select(Integration.id).where(Integration.provider == "stripe")
    ).one()
    session.rollback()  # SQLite: an open transaction holds the write lock the sidecar needs
    response = sidecar.post(f"/webhooks/generic/{stripe_id}", content=BODY, headers=_signed())
    assert response.status_code == 404
    assert "signing_secrets" in response.json()["detail"]
