"""The inbox's batch statement (the sidecar's hot path on PostgreSQL): every event once, each
with its job, duplicates recognised inside a batch and against what is stored."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.platform import inbox
from backend.platform.inbox import Incoming
from models import InboundEvent, OutboxJob
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
