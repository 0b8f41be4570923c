"""Zoho webhooks through the sidecar: the shared secret in X-Zoho-Secret, and how an event
without an id is keyed.

Zoho signs nothing, so a changed body cannot be detected here: the matrix has no "one byte
changed" row, and only the secret itself is checked.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from models import InboundEvent, Integration, IntegrationStatus
from tests.api.webhook_support import ZOHO_SECRET, Seeded, stored

BODY = json.dumps(
    {"event_id": "zb-1001", "event_type": "invoice_paid", "data": {"invoice_id": "460000000012345"}}
).encode()


@pytest.mark.parametrize(
    ("name", "headers", "status", "reason"),
    [
        ("valid", {"X-Zoho-Secret": ZOHO_SECRET}, 200, ""),
        ("wrong_secret", {"X-Zoho-Secret": "not-the-secret"}, 401, "X-Zoho-Secret does not match"),
        ("missing_header", {}, 401, "missing X-Zoho-Secret header"),
        ("malformed_header", {"X-Zoho-Secret": ZOHO_SECRET + " extra"}, 401, "does not match"),
        ("prefix_only", {"X-Zoho-Secret": ZOHO_SECRET[:-1]}, 401, "does not match"),
        ("other_case", {"X-Zoho-Secret": ZOHO_SECRET.upper()}, 401, "does not match"),
    ],
)
def test_secret_matrix(
    sidecar: TestClient,
    engine: Engine,
    seeded: Seeded,
    name: str,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    response = sidecar.post(f"/webhooks/zoho/{seeded.slug}", content=BODY, headers=headers)
    assert response.status_code == status, response.text
    if status == 200:
        assert stored(engine) == (1, 1)
    else:
        assert reason in response.json()["detail"]
        assert stored(engine) == (0, 0)


def test_event_is_stored_under_the_connected_zoho_product(
    sidecar: TestClient, session: Session, seeded: Seeded
) -> None:
    sidecar.post(
        f"/webhooks/zoho/{seeded.slug}", content=BODY, headers={"X-Zoho-Secret": ZOHO_SECRET}
    )
    event = session.scalars(select(InboundEvent)).one()
    integration_id = session.scalars(
        select(Integration.id).where(Integration.provider == "zoho_books")
    ).one()
    # Scoped by the integration, so two workspaces' ids cannot collide.
    assert (event.provider, event.external_id, event.event_type) == (
        "zoho_books",
        f"{integration_id}:zb-1001",
        "invoice_paid",
    )


def test_without_an_event_id_the_body_hash_keys_it_and_a_resend_is_a_duplicate(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    body = json.dumps({"operation": "contact.updated", "contact_id": 42}).encode()
    url = f"/webhooks/zoho/{seeded.slug}"
    first = sidecar.post(url, content=body, headers={"X-Zoho-Secret": ZOHO_SECRET})
    again = sidecar.post(url, content=body, headers={"X-Zoho-Secret": ZOHO_SECRET})
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    assert stored(engine) == (1, 1)
    event = session.scalars(select(InboundEvent)).one()
    assert (event.external_id.split(":", 1)[1], event.event_type) == (
        hashlib.sha256(body).hexdigest(),
        "contact.updated",
    )


def test_event_type_defaults_to_unknown(
    sidecar: TestClient, session: Session, seeded: Seeded
) -> None:
    sidecar.post(
        f"/webhooks/zoho/{seeded.slug}",
        content=b'{"event_id": 17}',
        headers={"X-Zoho-Secret": ZOHO_SECRET},
    )
    event = session.scalars(select(InboundEvent)).one()
    assert (event.external_id.split(":", 1)[1], event.event_type) == ("17", "unknown")


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"a=1&b=2", "not valid JSON"), (b'{"event_id": ["x"]}', "must be a string")],
)
def test_malformed_body_is_400(
    sidecar: TestClient, engine: Engine, seeded: Seeded, body: bytes, reason: str
) -> None:
    response = sidecar.post(
        f"/webhooks/zoho/{seeded.slug}", content=body, headers={"X-Zoho-Secret": ZOHO_SECRET}
    )
    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert stored(engine) == (0, 0)


def test_disconnected_zoho_is_404(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    row = session.scalars(select(Integration).where(Integration.provider == "zoho_books")).one()
    row.status = IntegrationStatus.INACTIVE
    session.commit()
    response = sidecar.post(
        f"/webhooks/zoho/{seeded.slug}", content=BODY, headers={"X-Zoho-Secret": ZOHO_SECRET}
    )
    assert response.status_code == 404
    assert stored(engine) == (0, 0)
