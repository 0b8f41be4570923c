"""SendGrid's signed Event Webhook through the sidecar: the signature matrix, and batches stored
one event per row."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.jobs.runner import Runner
from models import EmailEvent, InboundEvent, InboundStatus, Integration, OutboxJob
from tests.api.webhook_support import (
    Seeded,
    now,
    public_key_b64,
    seed,
    sendgrid_batch,
    sendgrid_signature,
    stored,
    tamper,
)

SIG = "X-Twilio-Email-Event-Webhook-Signature"
TS = "X-Twilio-Email-Event-Webhook-Timestamp"
BODY = sendgrid_batch("sg-evt-1")
Key = ec.EllipticCurvePrivateKey
Build = Callable[[Key], tuple[bytes, dict[str, str]]]


def _signed(key: Key, t: int | None = None, body: bytes = BODY) -> dict[str, str]:
    stamp = str(now() if t is None else t)
    return {SIG: sendgrid_signature(key, body, stamp), TS: stamp}


def _other_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


MATRIX: list[tuple[str, Build, int, str]] = [
    ("valid", lambda k: (BODY, _signed(k)), 200, ""),
    ("one_byte_changed", lambda k: (tamper(BODY), _signed(k)), 401, "no signature matches"),
    ("wrong_key", lambda k: (BODY, _signed(_other_key())), 401, "no signature matches"),
    ("missing_signature", lambda k: (BODY, {TS: str(now())}), 401, f"missing {SIG} header"),
    ("missing_timestamp", lambda k: (BODY, {SIG: _signed(k)[SIG]}), 401, f"missing {TS} header"),
    (
        "malformed_signature",
        lambda k: (BODY, {SIG: "%%%not-base64", TS: str(now())}),
        401,
        "not base64",
    ),
    (
        "malformed_timestamp",
        lambda k: (BODY, {**_signed(k), TS: "yesterday"}),
        401,
        f"malformed {TS}",
    ),
    (
        "301_s_old",
        lambda k: (BODY, _signed(k, now() - 301)),
        401,
        "timestamp outside the 300 s tolerance",
    ),
    (
        "301_s_future",
        lambda k: (BODY, _signed(k, now() + 301)),
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
    body, headers = build(seeded.sendgrid_key)
    response = sidecar.post(f"/webhooks/sendgrid/{seeded.slug}", content=body, headers=headers)
    assert response.status_code == status, response.text
    if status == 200:
        assert stored(engine) == (1, 1)
    else:
        assert reason in response.json()["detail"]
        assert stored(engine) == (0, 0)


def test_batch_of_three_is_three_rows_and_resending_it_adds_none(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    body = sendgrid_batch("sg-a", "sg-b", "sg-c")
    url = f"/webhooks/sendgrid/{seeded.slug}"
    first = sidecar.post(url, content=body, headers=_signed(seeded.sendgrid_key, body=body))
    assert first.json() == {"received": True, "stored": 3, "duplicates": 0}
    again = sidecar.post(url, content=body, headers=_signed(seeded.sendgrid_key, body=body))
    assert again.json() == {"received": True, "stored": 0, "duplicates": 3}
    assert stored(engine)[0] == 3
    rows = session.scalars(select(InboundEvent).order_by(InboundEvent.external_id)).all()
    # Each event named by a job (on PostgreSQL the post's three share one: inbox.py).
    named = sorted(
        inbound_id
        for payload in session.scalars(select(OutboxJob.payload))
        for inbound_id in payload.get("inbound_ids", [payload.get("inbound_id")])
    )
    assert named == sorted(r.id for r in rows)
    assert [(r.provider, r.external_id, r.event_type, r.workspace_id) for r in rows] == [
        ("sendgrid", f"sg-{x}", "delivered", seeded.workspace_id) for x in "abc"
    ]
    assert rows[0].payload["email"] == "buyer@example.com"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"event": "delivered"}', "JSON array of event objects"),
        (b"[1]", "JSON array of event objects"),
        (b'[{"sg_event_id": "ok", "event": "open"}, {"event": "open"}]', "event 1 has no"),
        (b'[{"sg_event_id": "ok"}]', "event 0 has no 'event'"),
    ],
)
def test_one_bad_event_refuses_the_whole_batch(
    sidecar: TestClient, engine: Engine, seeded: Seeded, body: bytes, reason: str
) -> None:
    response = sidecar.post(
        f"/webhooks/sendgrid/{seeded.slug}",
        content=body,
        headers=_signed(seeded.sendgrid_key, body=body),
    )
    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert stored(engine) == (0, 0)


def test_empty_batch_is_accepted_and_stores_nothing(
    sidecar: TestClient, engine: Engine, seeded: Seeded
) -> None:
    response = sidecar.post(
        f"/webhooks/sendgrid/{seeded.slug}",
        content=b"[]",
        headers=_signed(seeded.sendgrid_key, body=b"[]"),
    )
    assert response.json() == {"received": True, "stored": 0, "duplicates": 0}
    assert stored(engine) == (0, 0)


@pytest.mark.parametrize("configured", [None, "not-a-key"])
def test_missing_or_unusable_public_key_is_404(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded, configured: str | None
) -> None:
    row = session.scalars(select(Integration).where(Integration.provider == "sendgrid")).one()
    row.settings = {} if configured is None else {"event_webhook_public_key": configured}
    session.commit()
    response = sidecar.post(
        f"/webhooks/sendgrid/{seeded.slug}", content=BODY, headers=_signed(seeded.sendgrid_key)
    )
    assert response.status_code == 404
    assert "event_webhook_public_key" in response.json()["detail"]
    assert stored(engine) == (0, 0)


def test_key_rotation_in_settings_takes_effect(
    sidecar: TestClient, session: Session, seeded: Seeded
) -> None:
    new_key = _other_key()
    row = session.scalars(select(Integration).where(Integration.provider == "sendgrid")).one()
    row.settings = {"event_webhook_public_key": public_key_b64(new_key)}
    session.commit()
    url = f"/webhooks/sendgrid/{seeded.slug}"
    assert sidecar.post(url, content=BODY, headers=_signed(seeded.sendgrid_key)).status_code == 401
    assert sidecar.post(url, content=BODY, headers=_signed(new_key)).status_code == 200


def test_one_event_id_for_two_workspaces_is_stored_and_processed_once_in_each(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    """sg_event_id is the SendGrid account's: two workspaces sharing one account each get the
    event; a true repeat to one of them is still a duplicate."""
    other = seed(session, slug="globex")
    body = sendgrid_batch("sg-shared", "sg-own")
    answers = [
        sidecar.post(
            f"/webhooks/sendgrid/{ws.slug}",
            content=body,
            headers=_signed(ws.sendgrid_key, body=body),
        ).json()
        for ws in (seeded, other, other)
    ]
    assert [(a["stored"], a["duplicates"]) for a in answers] == [(2, 0), (2, 0), (0, 2)]
    # Four events; on PostgreSQL each post's events share a job (backend/platform/inbox.py).
    grouped = engine.dialect.name == "postgresql"
    jobs = 2 if grouped else 4
    assert stored(engine) == (4, jobs)

    report = Runner(engine, "test-worker", batch=100).run_once()
    assert (report.claimed, report.done) == (jobs, jobs), report.errors
    assert Runner(engine, "test-worker", batch=100).run_once().claimed == 0
    session.expire_all()
    rows = session.execute(
        select(InboundEvent.workspace_id, InboundEvent.external_id, InboundEvent.attempts)
        # Handled by backend/email/events.py: about no message of ours, each is only recorded.
        .where(InboundEvent.status == InboundStatus.HANDLED)
        .order_by(InboundEvent.workspace_id, InboundEvent.external_id)
    ).all()
    assert [tuple(r) for r in rows] == [
        (ws, sg, 1)
        for ws in sorted((seeded.workspace_id, other.workspace_id))
        for sg in ("sg-own", "sg-shared")
    ]
    recorded = session.execute(
        select(EmailEvent.workspace_id, EmailEvent.sg_event_id, EmailEvent.message_id).order_by(
            EmailEvent.workspace_id, EmailEvent.sg_event_id
        )
    ).all()
    assert [tuple(r) for r in recorded] == [
        (ws, sg, None)
        for ws in sorted((seeded.workspace_id, other.workspace_id))
        for sg in ("sg-own", "sg-shared")
    ]
