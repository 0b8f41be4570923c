"""The backlog the sidecar's metrics show (``platform.backlog``): the inbox's oldest unhandled
event and the outbox's jobs by kind and status, of every workspace."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.platform import backlog, inbox
from models import JobStatus, utcnow
from tests import factories


def test_an_empty_database_has_no_backlog(engine: Engine) -> None:
    assert backlog.read(engine) == backlog.Backlog(inbox_lag_seconds=0.0, queue_depth=[])


def test_stored_events_of_every_workspace_make_the_lag_and_the_depth(
    engine: Engine, session: Session
) -> None:
    acme = factories.workspace(session, slug="acme")
    globex = factories.workspace(session, slug="globex")
    for workspace_id, external_id, age in ((acme.id, "evt_a", 90), (globex.id, "evt_g", 30)):
        inbox.record(
            session,
            provider="stripe",
            external_id=external_id,
            event_type="invoice.paid",
            workspace_id=workspace_id,
            integration_id=None,
            payload={"id": external_id},
            received_at=utcnow() - dt.timedelta(seconds=age),
        )
    session.commit()
    read = backlog.read(engine)
    assert 90 <= read.inbox_lag_seconds < 120  # the oldest, whichever workspace it is in
    assert [(d.kind, d.status, d.count) for d in read.queue_depth] == [
        (inbox.PROCESS_KIND, JobStatus.PENDING, 2)
    ]
