"""What the console's Leads page and lead page show, read for one workspace: the list (filters,
search, keyset pages), a lead with its messages, e-mails and their tracking, and sequence
enrolments, and the lead page's cheap mark of what changes by itself (SendGrid's events, a reply).

Every query names the workspace: a lead of another workspace is as missing as one that never
existed (``NotFound``, the same words).

Tested in tests/leads/test_views.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from backend.email.purposes import PURPOSES
from backend.platform.errors import NotFound
from models import (
    EmailMessage,
    EmailSequence,
    Lead,
    LeadMessage,
    SequenceEnrolment,
    SequenceStep,
)

PAGE_SIZE = 25
# What the lead page lists of a lead's history: the newest, enough for any real lead.
HISTORY_LIMIT = 200
# Every status a lead takes (backend/email/events.py moves them; an operator sets won/lost).
STATUSES = (
    "new",
    "contacted",
    "proposal_viewed",
    "engaged",
    "email_invalid",
    "unsubscribed",
    "won",
    "lost",
)
NOT_FOUND = "There is no such lead in this workspace; pick one from Leads."
_CURSOR_SEPARATOR = "|"


@dataclass(frozen=True)
class LeadFilter:
    """Which leads: "" means any. ``search`` matches name, e-mail or company, any case."""

    status: str = ""
    source: str = ""
    service_type: str = ""
    search: str = ""


@dataclass(frozen=True)
class LeadRow:
    id: int
    name: str
    email: str
    company: str | None
    status: str
    source: str
    service_type: str | None
    inquiries: int
    last_activity: dt.datetime | None
    created_at: dt.datetime


@dataclass(frozen=True)
class LeadPage:
    rows: list[LeadRow]
    # Where the next page starts (after the last row), or None on the last page.
    next_cursor: str | None


@dataclass(frozen=True)
class FilterChoices:
    """The values the filters offer: those the workspace's leads have."""

    sources: list[str]
    service_types: list[str]


@dataclass(frozen=True)
class MessageRow:
    id: int
    at: dt.datetime
    kind: str  # inquiry | reply | note
    body: str


@dataclass(frozen=True)
class EmailRow:
    id: int
    purpose: str
    what: str  # the purpose in words, and the proposal's title for a proposal
    template: str
    to_email: str
    status: str
    created_at: dt.datetime
    sent_at: dt.datetime | None
    first_open_at: dt.datetime | None
    last_open_at: dt.datetime | None
    open_count: int
    click_count: int
    # Why it was skipped or failed, or why its fate is unknown.
    reason: str | None


@dataclass(frozen=True)
class EnrolmentRow:
    id: int
    sequence: str
    status: str
    step: int  # the next step's position (or the last sent, once completed)
    steps: int
    next_due_at: dt.datetime | None
    stop_reason: str | None
    stopped_at: dt.datetime | None


@dataclass(frozen=True)
class LeadDetail:
    id: int
    name: str
    email: str
    phone: str | None
    company: str | None
    status: str
    source: str
    service_type: str | None
    event_date: dt.date | None
    marketing_consent: bool
    time_zone: str | None
    inquiries: int
    created_at: dt.datetime
    last_activity: dt.datetime | None
    messages: list[MessageRow] = field(default_factory=list)
    emails: list[EmailRow] = field(default_factory=list)
    enrolments: list[EnrolmentRow] = field(default_factory=list)


# -- the list -----------------------------------------------------------------------------


def encode_cursor(row: LeadRow) -> str:
    return f"{row.created_at.isoformat()}{_CURSOR_SEPARATOR}{row.id}"


def decode_cursor(cursor: str | None) -> tuple[dt.datetime, int] | None:
    """A cursor made by ``encode_cursor``; anything else (a stale or edited one) is the start."""
    if not cursor:
        return None
    at, _, ident = cursor.rpartition(_CURSOR_SEPARATOR)
    try:
        moment = dt.datetime.fromisoformat(at)
    except ValueError:
        return None
    if not ident.isdigit() or moment.tzinfo is None:
        return None
    return moment, int(ident)


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_leads(
    session: Session,
    *,
    workspace_id: int,
    filters: LeadFilter = LeadFilter(),
    after: str | None = None,
    limit: int = PAGE_SIZE,
) -> LeadPage:
    """A page of the workspace's leads, newest first, from ``after`` (a cursor of the previous
    page). Keyset paging on (created_at, id): a lead arriving meanwhile never shifts a page, so
    no row shows twice or goes missing between pages."""
    stmt = select(Lead).where(Lead.workspace_id == workspace_id)
    if filters.status:
        stmt = stmt.where(Lead.status == filters.status)
    if filters.source:
        stmt = stmt.where(Lead.source == filters.source)
    if filters.service_type:
        stmt = stmt.where(func.lower(Lead.service_type) == filters.service_type.strip().lower())
    if term := filters.search.strip():
        pattern = f"%{_escaped(term)}%"
        stmt = stmt.where(
            or_(
                Lead.name.ilike(pattern, escape="\\"),
                Lead.email.ilike(pattern, escape="\\"),
                Lead.company.ilike(pattern, escape="\\"),
            )
        )
    if (start := decode_cursor(after)) is not None:
        at, ident = start
        stmt = stmt.where(or_(Lead.created_at < at, and_(Lead.created_at == at, Lead.id < ident)))
    # One more than a page: whether there is a next one, without counting.
    leads = list(
        session.scalars(stmt.order_by(Lead.created_at.desc(), Lead.id.desc()).limit(limit + 1))
    )
    more = len(leads) > limit
    leads = leads[:limit]
    activity = _last_activity(session, workspace_id, leads)
    rows = [
        LeadRow(
            id=lead.id,
            name=lead.name,
            email=lead.email,
            company=lead.company,
            status=lead.status,
            source=lead.source,
            service_type=lead.service_type,
            inquiries=lead.inquiries,
            last_activity=activity.get(lead.id),
            created_at=lead.created_at,
        )
        for lead in leads
    ]
    return LeadPage(rows, encode_cursor(rows[-1]) if more and rows else None)


def filter_choices(session: Session, *, workspace_id: int) -> FilterChoices:
    sources = session.scalars(
        select(Lead.source).where(Lead.workspace_id == workspace_id).distinct()
    )
    types = session.scalars(
        select(Lead.service_type)
        .where(Lead.workspace_id == workspace_id, Lead.service_type.is_not(None))
        .distinct()
    )
    # The service type filter ignores case: "Recital media" and "recital media" are one choice.
    by_lower = {t.strip().lower(): t.strip() for t in sorted(t for t in types if t and t.strip())}
    return FilterChoices(
        sources=sorted(s for s in sources if s),
        service_types=sorted(by_lower.values(), key=str.lower),
    )


def _latest(*moments: dt.datetime | None) -> dt.datetime | None:
    present = [m for m in moments if m is not None]
    return max(present) if present else None


def _last_activity(
    session: Session, workspace_id: int, leads: list[Lead]
) -> dict[int, dt.datetime | None]:
    """Per lead: its last inquiry, its e-mails' last SendGrid event, its last reply (two
    grouped queries over the page's leads, both on indexes)."""
    ids = [lead.id for lead in leads]
    if not ids:
        return {}
    email_events = dict(
        session.execute(
            select(EmailMessage.subject_id, func.max(EmailMessage.last_event_at))
            .where(
                EmailMessage.workspace_id == workspace_id,
                EmailMessage.subject_type == "lead",
                EmailMessage.subject_id.in_(ids),
            )
            .group_by(EmailMessage.subject_id)
        ).all()
    )
    replies = dict(
        session.execute(
            select(LeadMessage.lead_id, func.max(LeadMessage.at))
            .where(
                LeadMessage.workspace_id == workspace_id,
                LeadMessage.lead_id.in_(ids),
                LeadMessage.kind == "reply",
            )
            .group_by(LeadMessage.lead_id)
        ).all()
    )
    return {
        lead.id: _latest(lead.last_inquiry_at, email_events.get(lead.id), replies.get(lead.id))
        for lead in leads
    }


# -- one lead ------------------------------------------------------------------------------


def _lead(session: Session, workspace_id: int, lead_id: int) -> Lead:
    lead = session.scalars(
        select(Lead).where(Lead.workspace_id == workspace_id, Lead.id == lead_id)
    ).first()
    if lead is None:
        raise NotFound(NOT_FOUND)
    return lead


def _what(message: EmailMessage) -> str:
    purpose = PURPOSES.get(message.purpose)
    label = purpose.label if purpose is not None else message.purpose
    title = (message.context or {}).get("proposal_title")
    return f"{label}: {title}" if title else label


def _reason(message: EmailMessage) -> str | None:
    return message.skip_reason or message.failure_reason


def lead_detail(session: Session, *, workspace_id: int, lead_id: int) -> LeadDetail:
    """The lead page: NotFound for a lead that is not this workspace's."""
    lead = _lead(session, workspace_id, lead_id)
    messages = [
        MessageRow(id=m.id, at=m.at, kind=m.kind, body=m.body)
        for m in session.scalars(
            select(LeadMessage)
            .where(LeadMessage.workspace_id == workspace_id, LeadMessage.lead_id == lead.id)
            .order_by(LeadMessage.at.desc(), LeadMessage.id.desc())
            .limit(HISTORY_LIMIT)
        )
    ]
    sent = list(
        session.scalars(
            select(EmailMessage)
            .where(
                EmailMessage.workspace_id == workspace_id,
                EmailMessage.subject_type == "lead",
                EmailMessage.subject_id == lead.id,
            )
            .order_by(EmailMessage.created_at.desc(), EmailMessage.id.desc())
            .limit(HISTORY_LIMIT)
        )
    )
    last_event = _latest(*(m.last_event_at for m in sent))
    emails = [
        EmailRow(
            id=m.id,
            purpose=m.purpose,
            what=_what(m),
            template=m.template,
            to_email=m.to_email,
            status=m.status,
            created_at=m.created_at,
            sent_at=m.sent_at,
            first_open_at=m.first_open_at,
            last_open_at=m.last_open_at,
            open_count=m.open_count,
            click_count=m.click_count,
            reason=_reason(m),
        )
        for m in sent
    ]
    steps = (
        select(SequenceStep.sequence_id, func.count().label("steps"))
        .where(SequenceStep.workspace_id == workspace_id)
        .group_by(SequenceStep.sequence_id)
        .subquery()
    )
    enrolments = [
        EnrolmentRow(
            id=e.id,
            sequence=name,
            status=e.status,
            step=e.next_position,
            steps=int(count or 0),
            next_due_at=e.next_due_at,
            stop_reason=e.stop_reason,
            stopped_at=e.stopped_at,
        )
        for e, name, count in session.execute(
            select(SequenceEnrolment, EmailSequence.name, steps.c.steps)
            .join(
                EmailSequence,
                and_(
                    EmailSequence.id == SequenceEnrolment.sequence_id,
                    EmailSequence.workspace_id == workspace_id,
                ),
            )
            .outerjoin(steps, steps.c.sequence_id == SequenceEnrolment.sequence_id)
            .where(
                SequenceEnrolment.workspace_id == workspace_id,
                SequenceEnrolment.lead_id == lead.id,
            )
            .order_by(SequenceEnrolment.created_at.desc(), SequenceEnrolment.id.desc())
        ).all()
    ]
    replies = [m.at for m in messages if m.kind == "reply"]
    return LeadDetail(
        id=lead.id,
        name=lead.name,
        email=lead.email,
        phone=lead.phone,
        company=lead.company,
        status=lead.status,
        source=lead.source,
        service_type=lead.service_type,
        event_date=lead.event_date,
        marketing_consent=lead.marketing_consent,
        time_zone=lead.time_zone,
        inquiries=lead.inquiries,
        created_at=lead.created_at,
        last_activity=_latest(lead.last_inquiry_at, last_event, max(replies, default=None)),
        messages=messages,
        emails=emails,
        enrolments=enrolments,
    )


def change_mark(session: Session, *, workspace_id: int, lead_id: int) -> str | None:
    """A short digest of what changes on a lead page without the operator: the lead's status
    and last update, its newest message, and each of its e-mails' status, opens, clicks and
    last event. One statement (the lead by key, its e-mails by ``ix_email_messages_subject``,
    its newest message by ``ix_lead_messages_lead_id_at``); None when the lead is not the
    workspace's. The lead page polls it and reads the page again only when it changes."""
    newest_message = (
        select(func.max(LeadMessage.id))
        .where(LeadMessage.lead_id == Lead.id, LeadMessage.workspace_id == workspace_id)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            Lead.status,
            Lead.updated_at,
            newest_message,
            EmailMessage.id,
            EmailMessage.status,
            EmailMessage.open_count,
            EmailMessage.click_count,
            EmailMessage.last_event_at,
        )
        .select_from(Lead)
        .outerjoin(
            EmailMessage,
            and_(
                EmailMessage.workspace_id == Lead.workspace_id,
                EmailMessage.subject_type == "lead",
                EmailMessage.subject_id == Lead.id,
            ),
        )
        .where(Lead.workspace_id == workspace_id, Lead.id == lead_id)
        .order_by(EmailMessage.id)
    ).all()
    if not rows:
        return None
    return hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()[:16]
