"""The receiver cache (``backend/api/webhooks/receivers.py``) on a workspace's Stripe events: a
hit verifies without the database, and each workspace's events are stored as its own.
Concurrent misses and rotated secrets: tests/api/webhooks/test_stripe_intake.py."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from models import InboundEvent
from tests.api.webhook_support import STRIPE_SECRET, Seeded, now, seed, stripe_v1


def _post(client: TestClient, slug: str, event_id: str, secret: str = STRIPE_SECRET) -> int:
    body = json.dumps({"id": event_id, "type": "invoice.paid", "data": {"object": {}}}).encode()
    headers = {"Stripe-Signature": f"t={now()},v1={stripe_v1(body, secret, now())}"}
    response = client.post(f"/webhooks/stripe/{slug}", content=body, headers=headers)
    return int(response.status_code)


def test_a_cached_receiver_is_verified_without_a_lookup(
    sidecar: TestClient, engine: Engine, seeded: Seeded
) -> None:
    assert _post(sidecar, seeded.slug, "evt_first") == 200  # looked up, now cached
    lookups: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM integrations" in statement or "FROM workspaces" in statement:
            lookups.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        codes = [_post(sidecar, seeded.slug, f"evt_{n}") for n in range(5)]
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert codes == [200] * 5
    assert lookups == []


def test_each_workspace_has_its_own_cached_receiver(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    other = seed(session, slug="globex")  # signs with the same secret: only the key tells
    session.commit()
    assert _post(sidecar, seeded.slug, "evt_acme") == 200  # Acme's receiver now cached
    assert _post(sidecar, other.slug, "evt_globex") == 200
    assert _post(sidecar, "nobody", "evt_nobody") == 404
    with Session(engine) as check:
        rows = check.execute(select(InboundEvent.external_id, InboundEvent.workspace_id))
        owners = {external_id: workspace_id for external_id, workspace_id in rows}
    assert owners == {"evt_acme": seeded.workspace_id, "evt_globex": other.workspace_id}
