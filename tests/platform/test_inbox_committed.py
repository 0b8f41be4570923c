"""Storing events in a transaction of their own (``inbox.record_committed`` and
``record_all_committed``, what the sidecar's plain routes call): committed when they return,
duplicates recognised, and a batch stored whole or not at all."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from backend.platform import inbox
from backend.platform.inbox import Incoming
from models import InboundEvent, OutboxJob
from tests.factories import two_receivers


def _event(external_id: str, payload: dict[str, object] | None = None) -> Incoming:
    body = payload or {"id": external_id}
    # Stripe's: a provider without a batch handler gets a job an event (SendGrid's share one:
    # tests/platform/test_inbox_batch.py).
    return Incoming("stripe", external_id, "invoice.paid", None, None, body)


def _stored(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session:
        events = session.scalar(select(func.count()).select_from(InboundEvent))
        jobs = session.scalar(select(func.count()).select_from(OutboxJob))
    return int(events or 0), int(jobs or 0)


def test_a_batch_is_committed_with_a_job_each_and_duplicates_are_told(engine: Engine) -> None:
    assert inbox.record_committed(engine, _event("sg_0"))
    outcomes = inbox.record_all_committed(
        engine, [_event("sg_1"), _event("sg_0"), _event("sg_2"), _event("sg_1")]
    )
    assert outcomes == [True, False, True, False]
    assert _stored(engine) == (3, 3)


def test_a_batch_with_an_event_the_database_refuses_stores_none_of_it(engine: Engine) -> None:
    # For a workspace that does not exist: the foreign key refuses it on both databases.
    bad = Incoming("sendgrid", "sg_bad", "delivered", 999_999, None, {"id": "sg_bad"})
    with pytest.raises(SQLAlchemyError):
        inbox.record_all_committed(engine, [_event("sg_1"), bad])
    assert _stored(engine) == (0, 0)


def test_one_event_id_received_by_two_integrations_is_two_events(engine: Engine) -> None:
    with Session(engine) as session:
        (ws_a, int_a), (ws_b, int_b) = two_receivers(session, provider="stripe")

    def ours(workspace_id: int, integration_id: int) -> Incoming:
        return Incoming("stripe", "sg_shared", "invoice.paid", workspace_id, integration_id, {})

    outcomes = inbox.record_all_committed(
        engine, [ours(ws_a, int_a), ours(ws_b, int_b), ours(ws_b, int_b)]
    )
    assert outcomes == [True, True, False]
    assert not inbox.record_committed(engine, ours(ws_a, int_a))
    # Without an integration (the platform's account) the provider's id alone is the key.
    assert inbox.record_committed(engine, _event("sg_shared"))
    assert not inbox.record_committed(engine, _event("sg_shared"))
    assert _stored(engine) == (3, 3)
    with Session(engine) as session:
        keys = set(session.scalars(select(OutboxJob.idempotency_key)))
    assert keys == {
        f"inbox:stripe:{int_a}:sg_shared",
        f"inbox:stripe:{int_b}:sg_shared",
        "inbox:stripe:sg_shared",
    }
