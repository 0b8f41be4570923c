"""The demo's sequences: the Sequences page shows figures from the first start, and the
seeded steps' e-mails are settled ones that the send job never picks up."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.demo import seed as demo
from backend.email.sequences import views as sequence_views
from models import EmailMessage, EmailStatus, SequenceEnrolment, Workspace


def test_the_studio_has_sequences_with_leads_in_every_state(session: Session) -> None:
    demo.seed(session)
    session.commit()
    studio = session.scalars(select(Workspace).where(Workspace.slug == demo.STUDIO)).one()
    views = {v.name: v for v in sequence_views.overview(session, workspace_id=studio.id)}
    follow_up = views["New inquiry follow-up"]
    assert (follow_up.active, follow_up.completed, follow_up.stopped) == (1, 1, 1)
    first, second = follow_up.steps
    assert (first.sent, first.skipped, first.opened, first.clicked) == (2, 1, 1, 1)
    assert (second.sent, second.opened) == (1, 1)
    nudges = views["Deposit nudges"]
    assert (nudges.paused, nudges.active) == (True, 1)
    reasons = set(session.scalars(select(SequenceEnrolment.stop_reason)).all())
    assert "The lead replied" in reasons
    # The seeded steps' e-mails are settled: the send job has nothing of theirs to pick up.
    statuses = set(
        session.scalars(
            select(EmailMessage.status).where(EmailMessage.sequence_step_id.is_not(None))
        ).all()
    )
    assert EmailStatus.QUEUED.value not in statuses
