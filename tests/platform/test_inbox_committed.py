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


def _event(external_id: str, payload: dict[str, object] | None = None) -> Incoming:
    body = payload or {"id": external_id}
    return Incoming("sendgrid", external_id, "delivered", None, None, body)


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
