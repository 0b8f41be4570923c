"""SendGrid's events through the sidecar's signed receiver, then the inbox: each applied once
however often and in whatever order it arrives, statuses forward only, machine opens apart,
suppressions, the engagement timeline, and a lead's status, sequences and alerts."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.email import events, service
from backend.jobs.runner import Runner
from backend.platform import inbox
from models import (
    Alert,
    EmailEvent,
    EmailMessage,
    EmailSequence,
    EmailStatus,
    EmailSuppression,
    EngagementEvent,
    InboundEvent,
    InboundStatus,
    Lead,
    SequenceEnrolment,
)
from tests.api.webhook_support import Seeded, client_for, now, seed, sendgrid_signature

T0 = 1_700_000_000
SIG = "X-Twilio-Email-Event-Webhook-Signature"
TS = "X-Twilio-Email-Event-Webhook-Timestamp"


@pytest.fixture
def seeded(session: Session) -> Seeded:
    return seed(session)


@pytest.fixture
def sidecar(engine: Engine, seeded: Seeded) -> Iterator[TestClient]:
    yield from client_for(engine)


def _lead(session: Session, ws: int, email: str = "jane@example.com") -> int:
    lead = Lead(workspace_id=ws, email=email, name="Jane Doe")
    session.add(lead)
    session.commit()
    return lead.id


def _message(
    session: Session,
    ws: int,
    *,
    purpose: str = "proposal_sent",
    status: EmailStatus = EmailStatus.SENT,
    lead_id: int | None = None,
    to: str = "jane@example.com",
    x_id: str | None = "xmsg1",
) -> int:
    row = EmailMessage(
        workspace_id=ws,
        purpose=purpose,
        template=purpose,
        to_email=to,
        subject_type="lead" if lead_id else "client",
        subject_id=lead_id or 1,
        status=status.value,
        sendgrid_message_id=x_id if status is not EmailStatus.UNKNOWN else None,
    )
    session.add(row)
    session.commit()
    return row.id


def _event(
    sg_id: str, name: str, message_id: int, ws: int, at: int, **extra: Any
) -> dict[str, Any]:
    return {
        "email": "jane@example.com",
        "event": name,
        "sg_event_id": sg_id,
        "sg_message_id": "xmsg1.filter0001.16648.5515E0B88.0",
        "timestamp": at,
        "hub_message_id": str(message_id),
        "hub_workspace_id": str(ws),
        **extra,
    }


def _post(
    sidecar: TestClient, session: Session, seeded: Seeded, events: list[dict[str, Any]]
) -> None:
    session.rollback()  # the test's reads end: SQLite has one writer
    body = json.dumps(events).encode()
    stamp = str(now())
    response = sidecar.post(
        f"/webhooks/sendgrid/{seeded.slug}",
        content=body,
        headers={SIG: sendgrid_signature(seeded.sendgrid_key, body, stamp), TS: stamp},
    )
    assert response.status_code == 200, response.text


def _process(engine: Engine, session: Session) -> None:
    session.rollback()
    for _ in range(20):
        report = Runner(engine, "test-worker", batch=100).run_once()
        # Only the inbox is under test: an alert's e-mail has no SendGrid sender here.
        errors = [e for e in report.errors if not e.startswith("alerts.email")]
        assert not errors, errors
        if report.claimed == 0:
            return
    raise AssertionError("the inbox did not drain")


def _state(session: Session, message_id: int) -> tuple[Any, ...]:
    session.expire_all()
    m = session.get_one(EmailMessage, message_id)
    return (
        m.status,
        m.delivered_at,
        m.first_open_at,
        m.last_open_at,
        m.open_count,
        m.machine_open_count,
        m.first_click_at,
        m.last_click_at,
        m.click_count,
        m.last_event_at,
    )


def _journey(message_id: int, ws: int) -> list[dict[str, Any]]:
    return [
        _event("e1", "processed", message_id, ws, T0),
        _event("e2", "delivered", message_id, ws, T0 + 5),
        _event("e3", "open", message_id, ws, T0 + 60, sg_machine_open=True),
        _event("e4", "open", message_id, ws, T0 + 100, sg_machine_open=False),
        _event("e5", "click", message_id, ws, T0 + 130, url="https://p.example/1"),
        _event("e6", "open", message_id, ws, T0 + 900, sg_machine_open=False),
        _event("e7", "click", message_id, ws, T0 + 950, url="https://p.example/1"),
    ]


def test_events_three_times_and_shuffled_end_as_in_order(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    ws = seeded.workspace_id
    lead_a = _lead(session, ws, "a@example.com")
    lead_b = _lead(session, ws, "b@example.com")
    in_order = _message(session, ws, lead_id=lead_a)
    shuffled = _message(session, ws, lead_id=lead_b)

    for event in _journey(in_order, ws):
        _post(sidecar, session, seeded, [event])
        _process(engine, session)
    tripled = [{**e, "sg_event_id": "s-" + e["sg_event_id"]} for e in _journey(shuffled, ws) * 3]
    random.Random(15).shuffle(tripled)
    for start in range(0, len(tripled), 4):  # arrays of several events, some repeated
        _post(sidecar, session, seeded, tripled[start : start + 4])
    _process(engine, session)

    expected = _state(session, in_order)
    assert _state(session, shuffled) == expected
    status, delivered, first_open, last_open, opens, machine, first_click, last_click, clicks, _ = (
        expected
    )
    assert status == EmailStatus.CLICKED
    assert (opens, machine, clicks) == (2, 1, 2)  # the machine open is not a person's
    assert first_open is not None and first_open.timestamp() == T0 + 100
    assert last_open is not None and last_open.timestamp() == T0 + 900
    assert first_click is not None and first_click.timestamp() == T0 + 130
    assert last_click is not None and last_click.timestamp() == T0 + 950
    assert delivered is not None and delivered.timestamp() == T0 + 5

    def timeline(lead: int, message: int) -> list[tuple[Any, ...]]:
        rows = session.execute(
            select(EngagementEvent.name, EngagementEvent.occurred_at, EngagementEvent.properties)
            .where(EngagementEvent.subject_id == lead)
            .order_by(EngagementEvent.occurred_at)
        ).all()
        assert all(r.properties["message_id"] == message for r in rows)
        return [(r.name, r.occurred_at, {**r.properties, "message_id": 0}) for r in rows]

    # The same timeline as one ordered delivery: each event once, nothing more.
    assert timeline(lead_b, shuffled) == timeline(lead_a, in_order)
    recorded = session.execute(
        select(EmailEvent.message_id, func.count()).group_by(EmailEvent.message_id)
    ).all()
    assert dict(recorded) == {in_order: 7, shuffled: 7}
    rows = session.execute(
        select(EngagementEvent.subject_id, EngagementEvent.name, EngagementEvent.properties)
        .where(EngagementEvent.subject_id == lead_b)
        .order_by(EngagementEvent.occurred_at)
    ).all()
    assert [r.name for r in rows] == [
        "email.delivered",
        "email.opened",
        "email.clicked",
        "email.opened",
        "email.clicked",
    ]
    assert rows[2].properties == {
        "purpose": "proposal_sent",
        "message_id": shuffled,
        "url": "https://p.example/1",
    }
    assert all("jane" not in json.dumps(r.properties) for r in rows)
    # A click after the proposal was opened: engaged, and a late open does not step it back.
    assert [session.get_one(Lead, lead).status for lead in (lead_a, lead_b)] == ["engaged"] * 2
    # Each stored event handled once, most of them with their batch (``events.apply_batch``).
    assert set(session.execute(select(InboundEvent.status, InboundEvent.attempts))) == {
        (InboundStatus.HANDLED, 1)
    }


def _inbound(n: int, ws: int, payload: dict[str, Any]) -> InboundEvent:
    return InboundEvent(
        id=n,
        provider="sendgrid",
        event_type=payload["event"],
        external_id=payload["sg_event_id"],
        workspace_id=ws,
        payload=payload,
    )


def test_a_batch_applies_its_common_events_as_one_by_one(session: Session, seeded: Seeded) -> None:
    """``apply_batch`` (the set-based path of the inbox's batches) takes the common events
    about our messages and ends where ``handle``, one event at a time, ends; the rest it leaves
    to ``handle``; an event it meets again changes nothing."""
    ws = seeded.workspace_id
    other = seed(session, slug="globex")
    leads = [_lead(session, ws, f"{n}@example.com") for n in "ab"]
    messages = [_message(session, ws, lead_id=lead) for lead in leads]

    def events_for(message: int, prefix: str) -> list[dict[str, Any]]:
        journey = [{**e, "sg_event_id": prefix + e["sg_event_id"]} for e in _journey(message, ws)]
        return [
            *journey,
            journey[3],  # the same event twice in one batch
            _event(prefix + "d0", "delivered", message, ws, T0 + 2),  # an earlier delivered
            _event(prefix + "u", "unsubscribe", message, ws, T0 + 990),  # not a common one
            _event(prefix + "x", "click", message, other.workspace_id, T0 + 999),  # not ours
        ]

    for n, payload in enumerate(events_for(messages[0], "a-")):
        events.handle(session, _inbound(n, ws, payload))
    session.commit()

    batch = events_for(messages[1], "b-")
    random.Random(7).shuffle(batch)
    pending = [
        inbox.Pending(n, "sendgrid", p["event"], p["sg_event_id"], ws, p)
        for n, p in enumerate(batch)
    ]
    loaded = session.get_one(EmailMessage, messages[1])  # in the session before the batch
    assert loaded.open_count == 0
    applied = events.apply_batch(session, pending)
    assert applied == {
        n
        for n, p in enumerate(batch)
        if p["event"] in events.COMMON and p["hub_workspace_id"] == str(ws)
    }
    assert loaded.open_count == 2  # the session's object reloads what the batch wrote
    for n, payload in enumerate(batch):
        if n not in applied:
            events.handle(session, _inbound(100 + n, ws, payload))
    session.commit()

    assert _state(session, messages[1]) == _state(session, messages[0])
    assert _state(session, messages[1])[:2] == (EmailStatus.UNSUBSCRIBED, _at(T0 + 2))
    sent = [session.get_one(EmailMessage, m) for m in messages]
    assert [(m.sent_at, m.sendgrid_message_id) for m in sent] == [(_at(T0), "xmsg1")] * 2

    def timeline(lead: int) -> list[tuple[Any, ...]]:
        rows = session.execute(
            select(EngagementEvent.name, EngagementEvent.occurred_at, EngagementEvent.properties)
            .where(EngagementEvent.subject_id == lead)
            .order_by(EngagementEvent.occurred_at, EngagementEvent.name)
        ).all()
        return [(r.name, r.occurred_at, {**r.properties, "message_id": 0}) for r in rows]

    assert timeline(leads[1]) == timeline(leads[0])
    assert len(timeline(leads[1])) == 7
    assert [session.get_one(Lead, lead).status for lead in leads] == ["engaged"] * 2
    recorded = session.execute(
        select(EmailEvent.message_id, func.count()).group_by(EmailEvent.message_id)
    ).all()
    assert dict(recorded) == {messages[0]: 9, messages[1]: 9, None: 2}

    # Met again (a replay): taken, and nothing changes.
    before = _state(session, messages[1])
    assert events.apply_batch(session, pending) == applied
    session.commit()
    assert _state(session, messages[1]) == before
    assert len(timeline(leads[1])) == 7


def _at(timestamp: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def test_an_event_its_handler_meets_again_changes_nothing(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    """The inbox drops a repeated delivery before the handler (the test above); the handler
    keeps its own record too, for the event it meets again (an operator's replay)."""
    ws = seeded.workspace_id
    lead = _lead(session, ws)
    message = _message(session, ws, lead_id=lead)
    _post(sidecar, session, seeded, [_event("o1", "open", message, ws, T0)])
    _process(engine, session)
    before = _state(session, message)
    events.handle(session, session.scalars(select(InboundEvent)).one())
    session.commit()
    assert _state(session, message) == before
    assert before[4] == 1
    assert len(session.scalars(select(EngagementEvent)).all()) == 1


def test_a_late_delivered_does_not_step_back_and_a_bounce_overrides_it(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    ws = seeded.workspace_id
    message = _message(session, ws)
    _post(sidecar, session, seeded, [_event("o", "open", message, ws, T0 + 50)])
    _post(sidecar, session, seeded, [_event("d", "delivered", message, ws, T0 + 5)])
    _process(engine, session)
    assert _state(session, message)[0] == EmailStatus.OPENED
    _post(sidecar, session, seeded, [_event("b", "bounce", message, ws, T0 + 60, type="bounce")])
    _process(engine, session)
    assert _state(session, message)[0] == EmailStatus.BOUNCED


def test_proposal_opened_marks_the_lead_viewed_and_a_machine_open_does_not(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    ws = seeded.workspace_id
    lead = _lead(session, ws)
    message = _message(session, ws, lead_id=lead)
    _post(sidecar, session, seeded, [_event("m", "open", message, ws, T0, sg_machine_open=True)])
    _process(engine, session)
    session.expire_all()
    assert session.get_one(Lead, lead).status == "new"
    assert session.scalars(select(EngagementEvent)).all() == []
    _post(
        sidecar, session, seeded, [_event("p", "open", message, ws, T0 + 9, sg_machine_open=False)]
    )
    _process(engine, session)
    session.expire_all()
    assert session.get_one(Lead, lead).status == "proposal_viewed"


def test_a_hard_bounce_suppresses_the_address_and_the_next_mail_is_skipped(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    ws = seeded.workspace_id
    lead = _lead(session, ws)
    message = _message(session, ws, lead_id=lead, purpose="payment_request")
    blocked = _message(session, ws, to="blocked@example.com", x_id="xmsg2")
    _post(
        sidecar,
        session,
        seeded,
        [
            _event("b1", "bounce", message, ws, T0, type="bounce", reason="550 no such user"),
            {
                **_event("b2", "bounce", blocked, ws, T0, type="blocked"),
                "email": "blocked@example.com",
            },
        ],
    )
    _process(engine, session)
    session.expire_all()
    assert [
        (s.email, s.purpose_group, s.reason) for s in session.scalars(select(EmailSuppression))
    ] == [("jane@example.com", "all", "bounce")]  # a block is not the address's fault
    assert session.get_one(Lead, lead).status == "email_invalid"
    alert = session.scalars(select(Alert).where(Alert.type == "email.lead_bounced")).one()
    assert alert.entity_id == str(lead)
    assert "550 no such user" in (session.get_one(EmailMessage, message).failure_reason or "")

    again = service.queue_email(
        session,
        workspace_id=ws,
        purpose="payment_request",
        to_email="Jane@Example.com",
        to_name="Jane",
        subject_type="lead",
        subject_id=lead,
        context={},
        dedupe_key="after-bounce",
    )
    session.commit()
    assert again.status == EmailStatus.SKIPPED
    assert (again.skip_reason or "").startswith("Suppressed (bounce, all e-mail)")


def test_a_spam_report_stops_the_leads_sequences_and_raises_an_alert(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    ws = seeded.workspace_id
    lead = _lead(session, ws)
    sequence = EmailSequence(workspace_id=ws, name="Follow-up", trigger="proposal_sent")
    session.add(sequence)
    session.flush()
    session.add(SequenceEnrolment(workspace_id=ws, sequence_id=sequence.id, lead_id=lead))
    session.commit()
    message = _message(session, ws, lead_id=lead)
    _post(sidecar, session, seeded, [_event("c", "click", message, ws, T0)])
    _post(sidecar, session, seeded, [_event("s", "spamreport", message, ws, T0 + 9)] * 2)
    _process(engine, session)
    session.expire_all()
    assert session.get_one(Lead, lead).status == "unsubscribed"
    enrolment = session.scalars(select(SequenceEnrolment)).one()
    assert (enrolment.status, enrolment.stop_reason) == (
        "stopped",
        "The lead reported our mail as spam",
    )
    alert = session.scalars(select(Alert).where(Alert.type == "email.lead_spam_report")).one()
    assert "1 sequence(s) stopped" in alert.message
    assert [(s.purpose_group, s.reason) for s in session.scalars(select(EmailSuppression))] == [
        ("all", "spam_report")
    ]
    assert _state(session, message)[0] == EmailStatus.SPAM_REPORT


def test_unsubscribes_suppress_their_group_and_a_later_resubscribe_lifts_it_in_any_order(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    ws = seeded.workspace_id
    marketing = _message(session, ws, purpose="proposal_sent")
    _post(
        sidecar,
        session,
        seeded,
        [
            _event("r", "group_resubscribe", marketing, ws, T0 + 20),
            _event("u", "group_unsubscribe", marketing, ws, T0 + 10),
        ],
    )
    _process(engine, session)
    assert session.scalars(select(EmailSuppression)).all() == []
    _post(sidecar, session, seeded, [_event("u2", "unsubscribe", marketing, ws, T0 + 30)])
    _process(engine, session)
    assert [s.purpose_group for s in session.scalars(select(EmailSuppression))] == ["marketing"]
    assert _state(session, marketing)[0] == EmailStatus.UNSUBSCRIBED


def test_an_unknown_send_is_settled_by_a_delivered_event_found_by_the_x_message_id(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    ws = seeded.workspace_id
    unknown = _message(session, ws, status=EmailStatus.UNKNOWN)
    _post(sidecar, session, seeded, [_event("d", "delivered", unknown, ws, T0)])
    _process(engine, session)
    session.expire_all()
    row = session.get_one(EmailMessage, unknown)
    assert (row.status, row.sendgrid_message_id) == (EmailStatus.DELIVERED, "xmsg1")
    assert row.sent_at is not None and row.sent_at.timestamp() == T0

    # Without our custom args (an event SendGrid trimmed), the X-Message-Id and address find it.
    sent = _message(session, ws, to="other@example.com", x_id="xmsg9")
    bare = {
        "email": "Other@example.com",
        "event": "delivered",
        "sg_event_id": "bare",
        "sg_message_id": "xmsg9.filter0001.1.2.0",
        "timestamp": T0,
    }
    _post(sidecar, session, seeded, [bare])
    _process(engine, session)
    assert _state(session, sent)[0] == EmailStatus.DELIVERED


def test_another_workspaces_message_id_is_ignored(
    sidecar: TestClient, engine: Engine, session: Session, seeded: Seeded
) -> None:
    other = seed(session, slug="globex")
    theirs = _message(session, other.workspace_id)
    before = _state(session, theirs)
    # Posted to our receiver, naming their message: with our workspace id, and with theirs.
    _post(
        sidecar,
        session,
        seeded,
        [
            _event("x1", "bounce", theirs, seeded.workspace_id, T0, type="bounce"),
            _event("x2", "click", theirs, other.workspace_id, T0),
        ],
    )
    _process(engine, session)
    assert _state(session, theirs) == before
    assert session.scalars(select(EmailSuppression)).all() == []
    assert session.scalars(select(EngagementEvent)).all() == []


@pytest.fixture
def pg_seeded(pg_engine: Engine) -> Seeded:
    with Session(pg_engine, expire_on_commit=False) as session:
        return seed(session)


def test_two_workers_at_once_count_every_open_once(pg_engine: Engine, pg_seeded: Seeded) -> None:
    """The message is locked while an event is applied: concurrent workers lose no count."""
    ws = pg_seeded.workspace_id
    with Session(pg_engine, expire_on_commit=False) as session:
        message = _message(session, ws)
        opens = [_event(f"o{n}", "open", message, ws, T0 + n) for n in range(40)]
        for client in client_for(pg_engine):
            for start in range(0, 40, 8):
                _post(client, session, pg_seeded, opens[start : start + 8])

        def work(name: str) -> None:
            for _ in range(40):
                if Runner(pg_engine, name, batch=3).run_once().claimed == 0:
                    return

        threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        state = _state(session, message)
    assert (state[0], state[4]) == (EmailStatus.OPENED, 40)
    assert state[2] is not None and state[2].timestamp() == T0
    assert state[3] is not None and state[3].timestamp() == T0 + 39
