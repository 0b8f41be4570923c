"""The Leads page's and lead page's reads: filters, search, keyset pages without duplicates or
gaps, last activity, and every read scoped to the workspace (another's lead is not found)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from backend.leads import views
from backend.platform.errors import NotFound
from models import (
    EmailMessage,
    EmailSequence,
    Lead,
    LeadMessage,
    SequenceEnrolment,
    SequenceStep,
    utcnow,
)
from tests import factories

T0 = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)


def _lead(session: Session, ws: int, name: str, **values: object) -> Lead:
    values.setdefault("email", f"{name.lower().replace(' ', '.')}@example.com")
    values.setdefault("created_at", T0)
    lead = Lead(workspace_id=ws, name=name, **values)  # type: ignore[arg-type]
    session.add(lead)
    session.flush()
    return lead


def _email(session: Session, ws: int, lead_id: int, **values: object) -> EmailMessage:
    values.setdefault("purpose", "proposal_sent")
    values.setdefault("template", "proposal_sent")
    values.setdefault("to_email", "lead@example.com")
    message = EmailMessage(
        workspace_id=ws,
        subject_type="lead",
        subject_id=lead_id,
        **values,  # type: ignore[arg-type]
    )
    session.add(message)
    session.flush()
    return message


def _names(page: views.LeadPage) -> list[str]:
    return [row.name for row in page.rows]


def test_filters_and_search_match_only_the_workspaces_leads(session: Session) -> None:
    ws = factories.workspace(session, slug="studio").id
    other = factories.workspace(session, slug="other").id
    _lead(session, ws, "Jane Doe", company="Bright Steps", service_type="Recital media")
    _lead(session, ws, "Rita Osei", status="contacted", source="referral", service_type="wedding")
    _lead(session, ws, "Sam 100%", email="sam@studio.example", status="engaged")
    _lead(session, other, "Jane Other", company="Bright Steps", service_type="recital media")
    session.commit()

    def names(**filters: str) -> list[str]:
        page = views.list_leads(session, workspace_id=ws, filters=views.LeadFilter(**filters))
        return sorted(_names(page))

    assert names() == ["Jane Doe", "Rita Osei", "Sam 100%"]
    assert names(status="contacted") == ["Rita Osei"]
    assert names(source="referral") == ["Rita Osei"]
    assert names(source="website") == ["Jane Doe", "Sam 100%"]
    # The service type ignores case, as the proposal template's match does.
    assert names(service_type="RECITAL MEDIA") == ["Jane Doe"]
    # Search: name, e-mail or company, any case, never another workspace's.
    assert names(search="bright") == ["Jane Doe"]
    assert names(search="STUDIO.example") == ["Sam 100%"]
    assert names(search="osei") == ["Rita Osei"]
    # A wildcard typed is a character, not a pattern.
    assert names(search="100%") == ["Sam 100%"]
    assert names(search="%") == ["Sam 100%"]
    assert names(search="_") == []
    assert names(search="jane", status="engaged") == []
    choices = views.filter_choices(session, workspace_id=ws)
    assert choices.sources == ["referral", "website"]
    assert choices.service_types == ["Recital media", "wedding"]


def test_keyset_pages_have_no_duplicates_or_gaps_even_when_leads_arrive(
    session: Session,
) -> None:
    ws = factories.workspace(session).id
    other = factories.workspace(session, slug="other").id
    # Ties on created_at (five leads in the same microsecond) are ordered by id.
    for n in range(23):
        _lead(session, ws, f"Lead {n:02d}", created_at=T0 + dt.timedelta(minutes=n // 5))
    _lead(session, other, "Not ours", created_at=T0 + dt.timedelta(hours=1))
    session.commit()

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = views.list_leads(session, workspace_id=ws, after=cursor, limit=5)
        pages += 1
        seen += _names(page)
        if pages == 2:
            # A lead arriving between two pages goes on top, shifting nothing below.
            _lead(session, ws, "Newcomer", created_at=T0 + dt.timedelta(days=1))
            session.commit()
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    expected = [f"Lead {n:02d}" for n in sorted(range(23), key=lambda n: (n // 5, n), reverse=True)]
    assert seen == expected
    assert pages == 5
    # A full last page says there is no next one (no empty page after it).
    assert views.list_leads(session, workspace_id=ws, limit=24).next_cursor is None
    # A cursor that was edited or is stale starts again from the top.
    assert _names(views.list_leads(session, workspace_id=ws, after="junk|x", limit=1)) == [
        "Newcomer"
    ]


def test_last_activity_is_the_latest_inquiry_email_event_or_reply(session: Session) -> None:
    ws = factories.workspace(session).id
    quiet = _lead(session, ws, "Quiet", last_inquiry_at=T0)
    opened = _lead(session, ws, "Opened", last_inquiry_at=T0)
    replied = _lead(session, ws, "Replied", last_inquiry_at=T0)
    never = _lead(session, ws, "Never", last_inquiry_at=None)
    _email(session, ws, opened.id, status="opened", last_event_at=T0 + dt.timedelta(hours=2))
    _email(session, ws, opened.id, status="delivered", last_event_at=T0 + dt.timedelta(hours=1))
    _email(session, ws, replied.id, status="delivered", last_event_at=T0 + dt.timedelta(hours=1))
    reply_at = T0 + dt.timedelta(hours=3)
    for kind, at in (("reply", reply_at), ("note", T0 + dt.timedelta(days=9))):
        session.add(LeadMessage(workspace_id=ws, lead_id=replied.id, at=at, kind=kind, body="x"))
    session.commit()

    page = views.list_leads(session, workspace_id=ws)
    activity = {row.name: row.last_activity for row in page.rows}
    assert activity == {
        "Quiet": T0,
        "Opened": T0 + dt.timedelta(hours=2),
        # A note is the operator's, not the lead's: a reply is the last activity.
        "Replied": reply_at,
        "Never": None,
    }
    detail = views.lead_detail(session, workspace_id=ws, lead_id=replied.id)
    assert detail.last_activity == reply_at
    assert quiet.id and never.id


def test_the_lead_page_shows_messages_emails_and_sequence_progress(session: Session) -> None:
    ws = factories.workspace(session).id
    lead = _lead(session, ws, "Jane Doe", service_type="recital media", marketing_consent=True)
    for n, kind in enumerate(("inquiry", "reply", "note")):
        session.add(
            LeadMessage(
                workspace_id=ws,
                lead_id=lead.id,
                at=T0 + dt.timedelta(hours=n),
                kind=kind,
                body=f"{kind} body",
            )
        )
    _email(
        session,
        ws,
        lead.id,
        status="opened",
        context={"proposal_title": "Recital package"},
        sent_at=T0,
        first_open_at=T0 + dt.timedelta(minutes=5),
        open_count=2,
    )
    _email(
        session,
        ws,
        lead.id,
        purpose="proposal_reminder",
        template="proposal_reminder",
        status="skipped",
        skip_reason="unsubscribed from offers and proposals",
    )
    sequence = EmailSequence(workspace_id=ws, name="Proposal follow-up", trigger="proposal_sent")
    session.add(sequence)
    session.flush()
    for position in (1, 2, 3):
        session.add(
            SequenceStep(
                workspace_id=ws,
                sequence_id=sequence.id,
                position=position,
                delay_minutes=60,
                purpose="proposal_reminder",
            )
        )
    session.add(
        SequenceEnrolment(
            workspace_id=ws,
            sequence_id=sequence.id,
            lead_id=lead.id,
            next_position=2,
            next_due_at=T0 + dt.timedelta(days=2),
        )
    )
    session.commit()

    detail = views.lead_detail(session, workspace_id=ws, lead_id=lead.id)
    assert (detail.name, detail.service_type, detail.marketing_consent) == (
        "Jane Doe",
        "recital media",
        True,
    )
    assert [m.kind for m in detail.messages] == ["note", "reply", "inquiry"]  # newest first
    by_purpose = {e.purpose: e for e in detail.emails}
    proposal = by_purpose["proposal_sent"]
    assert (proposal.status, proposal.open_count, proposal.what) == (
        "opened",
        2,
        "Proposal: Recital package",
    )
    assert proposal.first_open_at == T0 + dt.timedelta(minutes=5)
    assert by_purpose["proposal_reminder"].reason == "unsubscribed from offers and proposals"
    (enrolment,) = detail.enrolments
    assert (enrolment.sequence, enrolment.step, enrolment.steps, enrolment.status) == (
        "Proposal follow-up",
        2,
        3,
        "active",
    )


def test_another_workspaces_lead_is_not_found_like_a_missing_one(session: Session) -> None:
    ws = factories.workspace(session).id
    other = factories.workspace(session, slug="other").id
    theirs = _lead(session, other, "Theirs")
    session.commit()
    with pytest.raises(NotFound) as foreign:
        views.lead_detail(session, workspace_id=ws, lead_id=theirs.id)
    with pytest.raises(NotFound) as missing:
        views.lead_detail(session, workspace_id=ws, lead_id=theirs.id + 1000)
    assert str(foreign.value) == str(missing.value) == views.NOT_FOUND
    assert views.change_mark(session, workspace_id=ws, lead_id=theirs.id) is None
    assert views.list_leads(session, workspace_id=ws).rows == []


def test_the_change_mark_moves_when_tracking_or_history_changes(session: Session) -> None:
    ws = factories.workspace(session).id
    lead = _lead(session, ws, "Jane Doe")
    other_lead = _lead(session, ws, "Someone Else")
    message = _email(session, ws, lead.id, status="delivered")
    session.commit()

    def mark() -> str | None:
        return views.change_mark(session, workspace_id=ws, lead_id=lead.id)

    first = mark()
    assert first is not None and mark() == first  # nothing changed: the same mark
    # Another lead's e-mail changes nothing here.
    _email(session, ws, other_lead.id, status="opened")
    session.commit()
    assert mark() == first
    message.status, message.open_count, message.last_event_at = "opened", 1, utcnow()
    session.commit()
    opened = mark()
    assert opened != first
    session.add(LeadMessage(workspace_id=ws, lead_id=lead.id, at=utcnow(), kind="reply", body="Hi"))
    session.commit()
    assert mark() != opened
