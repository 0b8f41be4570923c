"""Concurrent inquiries from one address (8 at once, in threads) make one lead counting 8, and
one ``lead.announce`` job, which raises one alert; an inquiry stored in the inbox (the form's
path) becomes its own workspace's lead, dated when it arrived, once."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.leads import capture
from backend.platform import inbox
from models import (
    Alert,
    EmailMessage,
    InboundEvent,
    InboundStatus,
    Lead,
    LeadMessage,
    OutboxJob,
)
from tests import factories
from tests.email.support import drain


def test_eight_at_once_make_one_lead(engine: Engine) -> None:
    with Session(engine) as session:
        ws = factories.workspace(session).id
        session.commit()
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def submit(n: int) -> None:
        try:
            start.wait(timeout=30)
            with Session(engine) as session:
                capture.capture(
                    session,
                    ws,
                    capture.Inquiry(name="Jane Doe", email="JANE@example.com ", message=f"#{n}"),
                )
                session.commit()
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with Session(engine) as session:
        (lead,) = session.scalars(select(Lead)).all()
        assert (lead.email, lead.inquiries) == ("jane@example.com", 8)
        assert len(session.scalars(select(LeadMessage)).all()) == 8
        # Only the inserting transaction announces: one job, run after the answer.
        (job,) = session.scalars(select(OutboxJob)).all()
        assert (job.kind, job.idempotency_key) == ("lead.announce", f"lead:{lead.id}:announce")
        assert session.scalars(select(Alert)).all() == []
    assert drain(engine, provider_jobs=False) == []
    with Session(engine) as session:
        (alert,) = session.scalars(select(Alert)).all()
        assert alert.message == "New lead: Jane Doe"
        assert session.scalars(select(EmailMessage)).all() == []  # no owners, no template


def test_a_stored_inquiry_becomes_its_workspaces_lead_as_of_its_arrival(engine: Engine) -> None:
    """The form's path: the inquiry stored in the inbox (as the sidecar stores it), then the
    inbox's job captures it in the workspace it was stored for, dated when it arrived."""
    with Session(engine) as session:
        mine = factories.workspace(session, slug="mine").id
        theirs = factories.workspace(session, slug="theirs").id
        session.commit()
    inquiry = capture.Inquiry(
        name="Jane Doe",
        email="jane@example.com",
        phone="+1 555 0100",
        service_type="recital media",
        event_date=dt.date(2027, 5, 3),
        message="Could you film it?",
        marketing_consent=True,
    )
    assert capture.Inquiry.from_payload(inquiry.payload()) == inquiry
    arrived = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    for workspace_id, external_id in ((mine, "a"), (mine, "b"), (theirs, "c")):
        stored = inbox.record_committed(
            engine,
            inbox.Incoming(
                capture.INBOX_PROVIDER,
                external_id,
                capture.INQUIRY_EVENT,
                workspace_id,
                None,
                inquiry.payload(),
                received_at=arrived,
            ),
        )
        assert stored
    assert drain(engine, provider_jobs=False) == []
    assert drain(engine, provider_jobs=False) == []  # nothing runs twice
    with Session(engine) as session:
        leads = {lead.workspace_id: lead for lead in session.scalars(select(Lead)).all()}
        assert set(leads) == {mine, theirs}
        assert (leads[mine].inquiries, leads[theirs].inquiries) == (2, 1)
        assert leads[mine].marketing_consent is True
        assert str(leads[mine].event_date) == "2027-05-03"
        assert leads[mine].created_at.replace(tzinfo=dt.UTC) == arrived
        assert leads[mine].last_inquiry_at is not None
        assert leads[mine].last_inquiry_at.replace(tzinfo=dt.UTC) == arrived
        messages = session.execute(select(LeadMessage.workspace_id, LeadMessage.body)).all()
        assert sorted(messages) == sorted(
            [(mine, "Could you film it?")] * 2 + [(theirs, "Could you film it?")]
        )
        statuses = session.scalars(
            select(InboundEvent.status).where(InboundEvent.provider == capture.INBOX_PROVIDER)
        ).all()
        assert statuses == [InboundStatus.HANDLED] * 3
        alerts = session.execute(select(Alert.workspace_id)).scalars().all()
        assert sorted(alerts) == sorted([mine, theirs])  # each new lead announced, once
