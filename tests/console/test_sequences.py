"""The Sequences page's tables: the workspace's sequences only, with their steps labelled as
an operator reads them and each step's counts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from backend.email.sequences import service as sequences
from backend.email.sequences import views as sequence_views
from backend.email.sequences.service import StepSpec
from console.state.sequences import delay_label, read_snapshot, window_label
from models import EmailMessage, EmailStatus
from tests import factories


def test_the_page_shows_the_workspaces_sequences_and_each_steps_counts(session: Session) -> None:
    ws = factories.workspace(session).id
    other = factories.workspace(session, slug="other").id
    made = sequences.create_sequence(
        session,
        workspace_id=ws,
        name="New lead follow-up",
        trigger="lead_created",
        steps=[
            StepSpec(60, "sequence_followup"),
            StepSpec(3 * 1440, "proposal_reminder", 9, 17),
        ],
        paused=True,
    )
    sequences.create_sequence(
        session,
        workspace_id=other,
        name="Another workspace's",
        trigger="lead_created",
        steps=[StepSpec(0, "sequence_followup")],
    )
    first_step = sequence_views.overview(session, workspace_id=ws)[0].steps[0].id
    session.add(
        EmailMessage(
            workspace_id=ws,
            purpose="sequence_followup",
            template="sequence_followup",
            to_email="jane@example.com",
            status=EmailStatus.OPENED.value,
            first_open_at=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
            sequence_step_id=first_step,
        )
    )
    session.flush()

    snapshot = read_snapshot(session, ws)
    assert snapshot.sequences == [
        {
            "id": str(made.id),
            "name": "New lead follow-up",
            "trigger": "A new lead",
            "paused": "yes",
            "steps": "2",
            "enrolled": "0",
            "active": "0",
            "completed": "0",
            "stopped": "0",
        }
    ]
    first, second = snapshot.steps
    assert (first["delay"], first["template"], first["window"]) == (
        "1 hour after the enrolment",
        "Sequence follow-up",
        "any time",
    )
    assert (first["sent"], first["opened"], first["clicked"]) == ("1", "1", "0")
    assert (second["delay"], second["template"], second["window"]) == (
        "3 days after the previous step",
        "Proposal reminder",
        "9:00 to 17:00, their time",
    )
    assert second["sent"] == "0"


def test_labels() -> None:
    assert [delay_label(m) for m in (0, 1, 45, 120, 1440, 90)] == [
        "at once", "1 minute", "45 minutes", "2 hours", "1 day", "90 minutes",
    ]  # fmt: skip
    assert window_label(None, None) == "any time"
    assert window_label(22, 6) == "22:00 to 6:00, their time"
