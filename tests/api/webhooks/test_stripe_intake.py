"""A workspace's Stripe events on the sidecar's fast path: many at once are all stored (in
batches on PostgreSQL) with the right answer each, and a secret rotated in the console works
at once despite the secret cache."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from backend.connections import credentials
from models import Integration
from tests.api.webhook_support import STRIPE_SECRET, Seeded, now, stored, stripe_v1


def _post(
    client: TestClient, slug: str, event_id: str, secret: str = STRIPE_SECRET
) -> tuple[int, bool | None]:
    """(status, duplicate) of one signed event."""
    body = json.dumps({"id": event_id, "type": "invoice.paid", "data": {"object": {}}}).encode()
    headers = {"Stripe-Signature": f"t={now()},v1={stripe_v1(body, secret, now())}"}
    response = client.post(f"/webhooks/stripe/{slug}", content=body, headers=headers)
    duplicate = response.json()["duplicate"] if response.status_code == 200 else None
    return response.status_code, duplicate


def test_events_sent_at_once_are_each_stored_once(
    sidecar: TestClient, engine: Engine, seeded: Seeded
) -> None:
    ids = [f"evt_{n}" for n in range(40)] + ["evt_same"] * 8
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(lambda event_id: _post(sidecar, seeded.slug, event_id), ids))
    assert codes[:40] == [(200, False)] * 40
    assert sorted(codes[40:]) == [(200, False)] + [(200, True)] * 7
    assert stored(engine) == (41, 41)


def test_a_rotated_secret_works_at_once(
    sidecar: TestClient, engine: Engine, seeded: Seeded
) -> None:
    assert _post(sidecar, seeded.slug, "evt_before") == (200, False)  # old secret now cached
    rotated = "whsec_rotated_secret_0123456789abcdef"
    with Session(engine) as session:
        integration = session.scalars(
            select(Integration).where(
                Integration.workspace_id == seeded.workspace_id, Integration.provider == "stripe"
            )
        ).one()
        credentials.seal(integration, {"webhook_signing_secret": rotated})
        session.commit()
    assert _post(sidecar, seeded.slug, "evt_after", secret=rotated) == (200, False)
    assert _post(sidecar, seeded.slug, "evt_old_secret") == (401, None)
    assert stored(engine) == (2, 2)


def test_events_arriving_together_share_one_lookup_of_the_workspaces_secret(
    sidecar: TestClient, engine: Engine, seeded: Seeded
) -> None:
    # Nothing cached yet (as after every expiry): 24 requests at once, one lookup.
    lookups: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM integrations" in statement:
            lookups.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with ThreadPoolExecutor(max_workers=24) as pool:
            codes = list(pool.map(lambda n: _post(sidecar, seeded.slug, f"evt_{n}"), range(24)))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert codes == [(200, False)] * 24
    assert len(lookups) == 1, lookups
    assert stored(engine) == (24, 24)
