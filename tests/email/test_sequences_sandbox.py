"""A sequence with a frozen clock through the real SendGrid SDK against the sandbox: its first
step lands in the mailbox on time (rendered with the lead's and the trigger's variables), not
before, and nothing more lands once the lead's reply, pressed in the sandbox's mailbox and
posted to the served sidecar's Inbound Parse route, stops it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.email.sequences import service as sequences
from backend.email.sequences.service import StepSpec
from models import EnrolmentStatus, Lead, LeadMessage, SequenceEnrolment
from tests.email.support import (
    drain,
    mailbox,
    reply_in_mailbox,
    sendgrid_sandbox,  # noqa: F401 (the "sandbox" fixture)
    sidecar_receiving_events,
    workspace_with_sendgrid,
)
from tests.support.sandbox_fixtures import RunningSandbox

T0 = dt.datetime(2027, 1, 11, 10, 0, tzinfo=dt.UTC)


def test_a_sequence_sends_its_steps_on_time_and_stops_on_a_reply(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    ws = workspace_with_sendgrid(engine, sandbox)
    with Session(engine) as session:
        sequences.create_sequence(
            session,
            workspace_id=ws,
            name="After a proposal",
            trigger="proposal_sent",
            steps=[
                StepSpec(60, "sequence_followup"),
                StepSpec(3 * 24 * 60, "proposal_reminder", 9, 17),
            ],
        )
        lead = Lead(
            workspace_id=ws,
            email="jane@example.com",
            name="Jane Doe",
            service_type="recital media",
            marketing_consent=True,
            time_zone="Europe/Berlin",
        )
        session.add(lead)
        session.flush()
        lead_id = lead.id
        sequences.enrol(
            session,
            workspace_id=ws,
            lead_id=lead_id,
            trigger="proposal_sent",
            at=T0,
            context={"proposal_title": "Recital package", "proposal_url": "https://p.example/1"},
        )
        session.commit()

    sequences.run_due(engine, now=T0 + dt.timedelta(minutes=59))
    assert drain(engine) == []
    assert mailbox(sandbox) == []

    sequences.run_due(engine, now=T0 + dt.timedelta(minutes=60))
    assert drain(engine) == []
    (mail,) = mailbox(sandbox)
    assert mail["to"]["email"] == "jane@example.com"
    assert mail["subject"] == "Following up on your recital media inquiry"
    assert "Hi Jane Doe," in mail["text"]

    # Jane replies before the reminder is due, from the sandbox's mailbox: nothing more is sent.
    with sidecar_receiving_events(engine, sandbox, ws):
        reply_in_mailbox(engine, sandbox, "jane@example.com", "Sounds good, can we talk Tuesday?")
    assert drain(engine) == []
    with Session(engine) as session:
        enrolment = session.scalars(
            select(SequenceEnrolment).where(SequenceEnrolment.lead_id == lead_id)
        ).one()
        assert enrolment.status == EnrolmentStatus.STOPPED
        assert (enrolment.stop_reason or "").startswith("The lead replied on ")
        [reply] = session.scalars(select(LeadMessage).where(LeadMessage.kind == "reply")).all()
        assert "can we talk Tuesday?" in reply.body
    sequences.run_due(engine, now=T0 + dt.timedelta(days=30))
    assert drain(engine) == []
    assert len(mailbox(sandbox)) == 1
