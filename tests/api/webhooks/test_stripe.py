"""Stripe webhooks through the sidecar: a workspace's account and the platform's own.

Every refusal is checked for its status, its reason, and that the inbox and outbox stayed empty.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend import jobs  # noqa: F401 - loads every domain's jobs.py: the handlers
from backend.jobs.runner import Runner
from models import Buyer, InboundEvent, InboundStatus, Invoice, InvoiceStatus, OutboxJob
from tests import factories
from tests.api.webhook_support import (
    PLATFORM_SECRET,
    STRIPE_SECRET,
    Seeded,
    now,
    seed,
    stored,
    stripe_event,
    stripe_v1,
    tamper,
)

BODY = stripe_event()
# (name, secret-to-body-and-header builder, expected status, part of the reason)
Build = Callable[[str], tuple[bytes, dict[str, str]]]


def _signed(secret: str, t: int | None = None, body: bytes = BODY) -> dict[str, str]:
    t = now() if t is None else t
    return {"Stripe-Signature": f"t={t},v1={stripe_v1(body, secret, t)}"}


MATRIX: list[tuple[str, Build, int, str]] = [
    ("valid", lambda s: (BODY, _signed(s)), 200, ""),
    ("one_byte_changed", lambda s: (tamper(BODY), _signed(s)), 401, "no signature matches"),
    ("wrong_secret", lambda s: (BODY, _signed("whsec_wrong")), 401, "no signature matches"),
    ("missing_header", lambda s: (BODY, {}), 401, "missing Stripe-Signature header"),
    (
        "malformed_header",
        lambda s: (BODY, {"Stripe-Signature": "v1=abc;t=now"}),
        401,
        "malformed Stripe-Signature header",
    ),
    (
        "only_v0",
        lambda s: (BODY, {"Stripe-Signature": f"t={now()},v0={stripe_v1(BODY, s, now())}"}),
        401,
        "v0 is not accepted",
    ),
    (
        "several_one_valid",
        lambda s: (
            BODY,
            {
                "Stripe-Signature": (
                    f"t={now()},v1={'a' * 64},v1={stripe_v1(BODY, s, now())},v0={'b' * 64}"
                )
            },
        ),
        200,
        "",
    ),
    (
        "301_s_old",
        lambda s: (BODY, _signed(s, now() - 301)),
        401,
        "timestamp outside the 300 s tolerance",
    ),
    (
        "301_s_future",
        lambda s: (BODY, _signed(s, now() + 301)),
        401,
        "timestamp outside the 300 s tolerance",
    ),
]
IDS = [case[0] for case in MATRIX]


def _check(engine: Engine, response_status: int, detail: str, status: int, reason: str) -> None:
    assert response_status == status, detail
    if status == 200:
        assert stored(engine) == (1, 1)
    else:
        assert reason in detail
        assert stored(engine) == (0, 0)


@pytest.mark.parametrize(("name", "build", "status", "reason"), MATRIX, ids=IDS)
def test_workspace_signature_matrix(
    sidecar: TestClient,
    engine: Engine,
    seeded: Seeded,
    name: str,
    build: Build,
    status: int,
    reason: str,
) -> None:
    body, headers = build(STRIPE_SECRET)
    response = sidecar.post(f"/webhooks/stripe/{seeded.slug}", content=body, headers=headers)
    _check(engine, response.status_code, response.text, status, reason)


@pytest.mark.parametrize(("name", "build", "status", "reason"), MATRIX, ids=IDS)
def test_platform_signature_matrix(
    sidecar: TestClient, engine: Engine, name: str, build: Build, status: int, reason: str
) -> None:
    body, headers = build(PLATFORM_SECRET)
    response = sidecar.post("/webhooks/stripe", content=body, headers=headers)
    _check(engine, response.status_code, response.text, status, reason)


def test_workspace_event_is_stored_with_its_workspace_and_job(
    sidecar: TestClient, session: Session, seeded: Seeded
) -> None:
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), STRIPE_SECRET, now())
    response = sidecar.post(
        f"/webhooks/stripe/{seeded.slug}", content=BODY, headers={"Stripe-Signature": header}
    )
    assert response.json() == {"received": True, "duplicate": False}
    event = session.scalars(select(InboundEvent)).one()
    assert (event.provider, event.external_id, event.event_type, event.workspace_id) == (
        "stripe",
        "evt_1",
        "invoice.paid",
        seeded.workspace_id,
    )
    assert event.payload["data"]["object"]["amount_paid"] == 1200
    job = session.scalars(select(OutboxJob)).one()
    assert (job.kind, job.payload, job.workspace_id) == (
        "inbox.process",
        {"inbound_id": event.id},
        seeded.workspace_id,
    )


def test_platform_event_is_stored_without_a_workspace(
    sidecar: TestClient, session: Session
) -> None:
    response = sidecar.post("/webhooks/stripe", content=BODY, headers=_signed(PLATFORM_SECRET))
    assert response.status_code == 200
    event = session.scalars(select(InboundEvent)).one()
    assert (event.provider, event.workspace_id) == ("stripe_platform", None)


def test_workspace_secret_does_not_verify_platform_events(
    sidecar: TestClient, engine: Engine
) -> None:
    response = sidecar.post("/webhooks/stripe", content=BODY, headers=_signed(STRIPE_SECRET))
    assert response.status_code == 401
    assert stored(engine) == (0, 0)


def test_duplicate_stripe_event_changes_nothing(
    sidecar: TestClient, engine: Engine, seeded: Seeded
) -> None:
    first = sidecar.post(
        f"/webhooks/stripe/{seeded.slug}", content=BODY, headers=_signed(STRIPE_SECRET)
    )
    # A retry is signed afresh by Stripe: same event id, new timestamp and signature.
    again = sidecar.post(
        f"/webhooks/stripe/{seeded.slug}", content=BODY, headers=_signed(STRIPE_SECRET, now() - 5)
    )
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == {"received": True, "duplicate": True}
    assert stored(engine) == (1, 1)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"type": "invoice.paid"}', "no 'id' string"),
        (b'{"id": "evt_1"}', "no 'type' string"),
        (b'{"id": 7, "type": "invoice.paid"}', "no 'id' string"),
        (b'{"id": "' + b"e" * 129 + b'", "type": "x"}', "longer than 128"),
        (b'{"id": "evt_1", "type": "x", "n": NaN}', "not valid JSON"),
        (b'{"id": "evt_1", "type": "x", "s": "a\\u0000b"}', "cannot be stored"),
        (b'{"id": "evt_1", "type": "x", "s": "\\ud800"}', "cannot be stored"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
)
def test_signed_but_malformed_body_is_400_with_a_reason(
    sidecar: TestClient, engine: Engine, seeded: Seeded, body: bytes, reason: str
) -> None:
    response = sidecar.post(
        f"/webhooks/stripe/{seeded.slug}", content=body, headers=_signed(STRIPE_SECRET, body=body)
    )
    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]
    assert stored(engine) == (0, 0)


@pytest.mark.parametrize("slug", ["nobody", "x" * 300, "a%00b", "ACME"])
def test_unknown_workspace_is_404(sidecar: TestClient, engine: Engine, slug: str) -> None:
    response = sidecar.post(
        f"/webhooks/stripe/{slug}", content=BODY, headers=_signed(STRIPE_SECRET)
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown workspace"}
    assert stored(engine) == (0, 0)


def test_workspace_without_stripe_is_404(
    sidecar: TestClient, engine: Engine, session: Session
) -> None:
    factories.workspace(session, slug="bare")
    session.commit()
    response = sidecar.post("/webhooks/stripe/bare", content=BODY, headers=_signed(STRIPE_SECRET))
    assert response.status_code == 404
    assert "not connected" in response.json()["detail"]


def _sent_invoice(session: Session, workspace_id: int) -> None:
    """The invoice in_1 that stripe_event's invoice.paid pays, sent from this workspace."""
    session.add(Buyer(workspace_id=workspace_id, platform_user_id="fb_1", handle="b1"))
    session.add(
        Invoice(
            workspace_id=workspace_id,
            provider="stripe",
            external_id="in_1",
            buyer_handle="b1",
            buyer_platform_id="fb_1",
            status=InvoiceStatus.SENT,
            amount_cents=1200,
        )
    )


def test_one_event_for_two_workspaces_is_stored_and_handled_once_in_each(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    """One Stripe account connected to two workspaces sends each the same event id: each
    workspace gets its copy (the key is the receiving integration's, not Stripe's alone)."""
    other = seed(session, slug="globex")
    for workspace_id in (seeded.workspace_id, other.workspace_id):
        _sent_invoice(session, workspace_id)
    session.commit()
    answers = [
        sidecar.post(f"/webhooks/stripe/{slug}", content=BODY, headers=_signed(STRIPE_SECRET))
        for slug in (seeded.slug, other.slug, seeded.slug)
    ]
    assert [a.json()["duplicate"] for a in answers] == [False, False, True]
    assert stored(engine) == (2, 2)

    report = Runner(engine, "test-worker", batch=100).run_once()
    assert (report.claimed, report.done) == (2, 2), report.errors
    session.expire_all()
    events = session.scalars(select(InboundEvent).order_by(InboundEvent.workspace_id)).all()
    assert [(e.workspace_id, e.status, e.attempts) for e in events] == [
        (seeded.workspace_id, InboundStatus.HANDLED, 1),
        (other.workspace_id, InboundStatus.HANDLED, 1),
    ]
    assert len({e.integration_id for e in events}) == 2
    paid = session.scalars(select(Invoice.workspace_id).where(Invoice.status == InvoiceStatus.PAID))
    assert sorted(paid) == sorted([seeded.workspace_id, other.workspace_id])


def test_the_platforms_events_stay_unique_by_their_id(
    sidecar: TestClient, engine: Engine, seeded: Seeded
) -> None:
    """The platform's own account has no integration: its ids are its own key, and a
    workspace's event of the same id is another event."""
    platform = [
        sidecar.post("/webhooks/stripe", content=BODY, headers=_signed(PLATFORM_SECRET))
        for _ in range(2)
    ]
    assert [r.json()["duplicate"] for r in platform] == [False, True]
    workspace = sidecar.post(
        f"/webhooks/stripe/{seeded.slug}", content=BODY, headers=_signed(STRIPE_SECRET)
    )
    assert workspace.json()["duplicate"] is False
    assert stored(engine) == (2, 2)
