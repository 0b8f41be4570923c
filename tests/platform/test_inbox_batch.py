"""The inbox's batch statement (the sidecar's hot path on PostgreSQL): every event once, each
with its job (a batch provider's events one job a workspace), duplicates recognised inside a
batch and against what is stored; a group's failing event handed a job of its own."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.platform import inbox
from backend.platform.inbox import Incoming
from models import InboundEvent, InboundStatus, JobStatus, OutboxJob
from tests.email.support import drain
from tests.factories import two_receivers


def _event(external_id: str, **changes: object) -> Incoming:
    fields: dict[str, object] = {
        "provider": "stripe",
        "external_id": external_id,
        "event_type": "invoice.paid",
        "workspace_id": None,
        "integration_id": None,
        "payload": {"id": external_id, "type": "invoice.paid", "amount": 1.10},
        "payload_json": None,
        "received_at": None,
    }
    fields.update(changes)
    return Incoming(**fields)  # type: ignore[arg-type]


def _stored(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session:
        events = session.scalar(select(func.count()).select_from(InboundEvent))
        jobs = session.scalar(select(func.count()).select_from(OutboxJob))
    return int(events or 0), int(jobs or 0)


def test_a_batch_stores_each_event_with_its_job(pg_engine: Engine) -> None:
    events = [_event(f"evt_{n}") for n in range(5)]  # padded to 8 rows
    with pg_engine.begin() as conn:
        assert inbox.record_many(conn, events) == [True] * 5
    assert _stored(pg_engine) == (5, 5)
    with Session(pg_engine) as session:
        job = session.scalars(select(OutboxJob).order_by(OutboxJob.id)).first()
        assert job is not None
        event = session.get(InboundEvent, job.payload["inbound_id"])
        assert event is not None and job.idempotency_key == f"inbox:stripe:{event.external_id}"
        assert job.kind == inbox.PROCESS_KIND and job.max_attempts == 8


def test_duplicates_in_the_batch_and_in_the_table_store_nothing(pg_engine: Engine) -> None:
    with pg_engine.begin() as conn:
        inbox.record_many(conn, [_event("evt_old")])
    with pg_engine.begin() as conn:
        outcome = inbox.record_many(
            conn, [_event("evt_new"), _event("evt_old"), _event("evt_new"), _event("evt_2")]
        )
    assert outcome == [True, False, False, True]
    assert _stored(pg_engine) == (3, 3)


def test_the_raw_json_text_is_stored_as_the_same_value(pg_engine: Engine) -> None:
    text = '{"id": "evt_raw", "type": "invoice.paid", "big": 1e400, "n": 0.1000000000000000055}'
    event = _event("evt_raw", payload={"id": "evt_raw"}, payload_json=text)
    with pg_engine.begin() as conn:
        assert inbox.record_many(conn, [event]) == [True]
    with Session(pg_engine) as session:
        stored = session.scalars(select(InboundEvent)).one()
    assert stored.payload["type"] == "invoice.paid"  # the text, not the dict, was stored


def test_long_lists_are_split_and_times_kept(pg_engine: Engine) -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    events = [_event(f"evt_{n}", received_at=when) for n in range(inbox.MAX_RECORD_BATCH + 3)]
    with pg_engine.begin() as conn:
        assert all(inbox.record_many(conn, events))
    assert _stored(pg_engine) == (len(events), len(events))
    with Session(pg_engine) as session:
        assert set(session.scalars(select(InboundEvent.received_at))) == {when}


def test_naive_times_are_refused(pg_engine: Engine) -> None:
    with pg_engine.begin() as conn, pytest.raises(ValueError, match="naive"):
        inbox.record_many(conn, [_event("evt_n", received_at=dt.datetime(2026, 1, 1))])


def test_one_event_id_received_by_two_integrations_is_two_events(pg_engine: Engine) -> None:
    """One Stripe account connected to two workspaces: each integration stores its copy, in
    the same batch or later; a repeat to one integration, and the platform's own events, are
    still recognised."""
    with Session(pg_engine) as session:
        receivers = two_receivers(session)
    (ws_a, int_a), (ws_b, int_b) = receivers

    def ours(workspace_id: int, integration_id: int) -> Incoming:
        return _event("evt_shared", workspace_id=workspace_id, integration_id=integration_id)

    with pg_engine.begin() as conn:
        outcome = inbox.record_many(
            conn, [ours(ws_a, int_a), ours(ws_b, int_b), ours(ws_a, int_a), _event("evt_shared")]
        )
    assert outcome == [True, True, False, True]
    with pg_engine.begin() as conn:
        assert inbox.record_many(conn, [ours(ws_b, int_b), _event("evt_shared")]) == [False, False]
    assert _stored(pg_engine) == (3, 3)
    with Session(pg_engine) as session:
        keys = set(session.scalars(select(OutboxJob.idempotency_key)))
    assert keys == {
        f"inbox:stripe:{int_a}:evt_shared",
        f"inbox:stripe:{int_b}:evt_shared",
        "inbox:stripe:evt_shared",
    }


def _sendgrid(external_id: str, ws: int, integration: int, kind: str = "delivered") -> Incoming:
    return _event(
        external_id,
        provider="sendgrid",
        event_type=kind,
        workspace_id=ws,
        integration_id=integration,
        payload={"sg_event_id": external_id, "event": kind, "email": "a@example.com"},
    )


def _jobs(engine: Engine) -> list[OutboxJob]:
    with Session(engine) as session:
        return list(session.scalars(select(OutboxJob).order_by(OutboxJob.id)))


def test_a_batch_providers_events_share_one_job_a_workspace(pg_engine: Engine) -> None:
    """SendGrid's events (a provider with a batch handler) stored by one statement get one job
    per workspace naming them all; Stripe's keep one each."""
    with Session(pg_engine) as session:
        (ws_a, int_a), (ws_b, int_b) = two_receivers(session, provider="sendgrid")
    events = [
        _sendgrid("sg_a1", ws_a, int_a),
        _event("evt_1"),
        _sendgrid("sg_b1", ws_b, int_b),
        _sendgrid("sg_a2", ws_a, int_a),
        _sendgrid("sg_a3", ws_a, int_a),
        _sendgrid("sg_a1", ws_a, int_a),  # a repeat in the post: no second row, no second id
        _sendgrid("sg_b2", ws_b, int_b),
    ]
    with pg_engine.begin() as conn:
        assert inbox.record_many(conn, events) == [True] * 5 + [False, True]
    with Session(pg_engine) as session:
        ids = dict(session.execute(select(InboundEvent.external_id, InboundEvent.id)).all())
    jobs = {(job.workspace_id, job.idempotency_key): job.payload for job in _jobs(pg_engine)}
    first_a = min(ids["sg_a1"], ids["sg_a2"], ids["sg_a3"])
    first_b = min(ids["sg_b1"], ids["sg_b2"])
    assert jobs == {
        (ws_a, f"inbox:sendgrid:batch:{first_a}"): {
            "inbound_ids": sorted([ids["sg_a1"], ids["sg_a2"], ids["sg_a3"]])
        },
        (ws_b, f"inbox:sendgrid:batch:{first_b}"): {
            "inbound_ids": sorted([ids["sg_b1"], ids["sg_b2"]])
        },
        (None, "inbox:stripe:evt_1"): {"inbound_id": ids["evt_1"]},
    }


def test_a_groups_failing_event_is_handed_a_job_of_its_own(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One event of a group whose handler fails is rolled back alone and given its own job
    (which retries it and shows its error); the group's other events are handled and the
    group's job is done."""

    def refuse(session: Session, event: InboundEvent) -> None:
        raise ValueError("this event cannot be applied")

    # An event type of SendGrid's that always fails, for this test only.
    monkeypatch.setitem(
        inbox._HANDLERS,
        ("sendgrid", "test_refused"),
        inbox._Registered(refuse, False, None),
    )
    with Session(pg_engine) as session:
        (ws, integration), _ = two_receivers(session, provider="sendgrid")
    with pg_engine.begin() as conn:
        inbox.record_many(
            conn,
            [
                _sendgrid("sg_1", ws, integration),
                _sendgrid("sg_bad", ws, integration, kind="test_refused"),
                _sendgrid("sg_2", ws, integration, kind="processed"),
            ],
        )
    (group,) = _jobs(pg_engine)
    errors = drain(pg_engine)
    with Session(pg_engine) as session:
        statuses = dict(
            (row.external_id, row.status)
            for row in session.execute(select(InboundEvent.external_id, InboundEvent.status))
        )
        bad_id = session.scalars(
            select(InboundEvent.id).where(InboundEvent.external_id == "sg_bad")
        ).one()
    assert statuses == {
        "sg_1": InboundStatus.HANDLED,
        "sg_2": InboundStatus.HANDLED,
        "sg_bad": InboundStatus.PENDING,
    }
    jobs = {job.id: job for job in _jobs(pg_engine)}
    assert jobs[group.id].status == JobStatus.DONE
    (own,) = [job for job in jobs.values() if job.id != group.id]
    assert own.payload == {"inbound_id": bad_id}
    assert own.idempotency_key == f"inbox:sendgrid:{integration}:sg_bad"
    assert own.status == JobStatus.PENDING and "cannot be applied" in (own.last_error or "")
    assert errors == [f"{inbox.PROCESS_KIND}#{own.id}: RuntimeError"]  # once, by its own job
