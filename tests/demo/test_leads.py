"""The demo's leads fill the Leads page: several statuses and sources, e-mails in every tracking
state the lead page shows, a sequence running and one stopped, and the seed stays idempotent."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.demo import seed as demo
from backend.leads import views
from models import EmailMessage, LeadMessage, SequenceEnrolment, Workspace


def test_the_studios_leads_fill_the_leads_page(session: Session) -> None:
    demo.seed(session)
    session.commit()
    studio = session.scalars(select(Workspace.id).where(Workspace.slug == demo.STUDIO)).one()
    page = views.list_leads(session, workspace_id=studio)
    assert len(page.rows) == 8 and page.next_cursor is None
    assert {r.status for r in page.rows} >= {
        "new",
        "contacted",
        "proposal_viewed",
        "engaged",
        "email_invalid",
        "unsubscribed",
    }
    assert {r.source for r in page.rows} == {"website", "referral", "phone"}
    assert all(r.last_activity is not None for r in page.rows)
    # Newest first.
    assert [r.created_at for r in page.rows] == sorted(
        (r.created_at for r in page.rows), reverse=True
    )
    statuses = set(session.scalars(select(EmailMessage.status)))
    assert statuses >= {"queued", "delivered", "opened", "clicked", "bounced", "skipped"}
    # (A sequence step's, backend/demo/sequences.py, is skipped too: no marketing consent.)
    skipped = session.scalars(
        select(EmailMessage).where(
            EmailMessage.status == "skipped", EmailMessage.sequence_step_id.is_(None)
        )
    ).one()
    assert skipped.skip_reason
    kinds = set(session.scalars(select(LeadMessage.kind)))
    assert kinds == {"inquiry", "reply", "note"}
    enrolments = {e.status: e for e in session.scalars(select(SequenceEnrolment))}
    # The Sequences page's demo (backend/demo/sequences.py) adds a completed one.
    assert set(enrolments) == {"active", "stopped", "completed"}
    assert enrolments["stopped"].stop_reason
    marco = next(r for r in page.rows if r.name == "Marco Bianchi")
    detail = views.lead_detail(session, workspace_id=studio, lead_id=marco.id)
    assert [m.kind for m in detail.messages] == ["note", "reply", "inquiry"]
    assert detail.enrolments[0].steps == 3


def test_seeding_twice_adds_no_second_history(session: Session) -> None:
    demo.seed(session)
    session.commit()
    counts = [
        session.scalar(select(func.count()).select_from(model))
        for model in (EmailMessage, LeadMessage, SequenceEnrolment)
    ]
    session.commit()  # seed hashes its logins' password before its first statement
    demo.seed(session)
    session.commit()
    assert [
        session.scalar(select(func.count()).select_from(model))
        for model in (EmailMessage, LeadMessage, SequenceEnrolment)
    ] == counts
