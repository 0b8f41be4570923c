"""A sequence with a frozen clock through the real SendGrid SDK against the sandbox: its first
step lands in the mailbox on time (rendered with the lead's and the trigger's variables), not
before, and nothing more lands once the lead's reply stops it (the issue's test; the reply
comes from Inbound Parse, which calls ``stop_lead_enrolments`` as here)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.email.sequences import service as sequences
from backend.email.sequences import stops
from backend.email.sequences.service import StepSpec
from backend.jobs.runner import Runner
from models import Lead
from tests.email.support import (
    mailbox,
    sendgrid_sandbox,  # noqa: F401 (the "sandbox" fixture)
    workspace_with_sendgrid,
)
from tests.support.sandbox_fixtures import RunningSandbox

T0 = dt.datetime(2027, 1, 11, 10, 0, tzinfo=dt.UTC)


def _drain(engine: Engine) -> None:
    runner = Runner(engine, "test-worker", batch=50)
    while True:
        report = runner.run_once()
        assert report.errors == []
        if not report.claimed:
            return


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
    _drain(engine)
    assert mailbox(sandbox) == []

    sequences.run_due(engine, now=T0 + dt.timedelta(minutes=60))
    _drain(engine)
    (mail,) = mailbox(sandbox)
    assert mail["to"]["email"] == "jane@example.com"
    assert mail["subject"] == "Following up on your recital media inquiry"
    assert "Hi Jane Doe," in mail["text"]

    # Jane replies before the reminder is due: nothing more is sent.
    with Session(engine) as session:
        stopped = stops.stop_lead_enrolments(
            session,
            workspace_id=ws,
            lead_id=lead_id,
            reason=stops.REPLIED,
            at=T0 + dt.timedelta(days=1),
        )
        session.commit()
    assert stopped == 1
    sequences.run_due(engine, now=T0 + dt.timedelta(days=30))
    _drain(engine)
    assert len(mailbox(sandbox)) == 1
