"""Capturing a lead: one lead per (workspace, lower-cased trimmed e-mail).

The form's request stores the validated inquiry in the inbox, as a webhook is stored
(backend/api/forms.py; provider ``INBOX_PROVIDER``), and answers. The inbox's job then runs
``capture_stored`` (declared in backend/leads/jobs.py), whose transaction does the least: the
lead (new, or a repeat inquiry: inquiries + 1, last inquiry, empty fields filled), the inquiry's
message and, for a new lead only, one outbox job ``lead.announce`` (keyed by the lead, so at
most one), with the stored inquiry marked handled.
That job (``announce``, declared in backend/leads/jobs.py; a local job, it calls no provider)
tells people: an alert (one per lead), a ``new_lead_notification`` to each owner and, when a
published proposal template matches its service type, a ``proposal_sent`` to the lead; and it
enrols the lead in the workspace's ``lead_created`` sequences (and ``proposal_sent`` ones when a
proposal goes: backend/email/sequences/service.py). Why, in docs/DESIGN.md ("Lead capture").

Concurrent inquiries from one address make one lead: the insert is ``ON CONFLICT DO NOTHING``
on the (workspace_id, email) unique constraint, and whoever loses the race counts its inquiry
with an atomic ``inquiries = inquiries + 1``.

Tested in tests/leads/test_capture.py and, through the sidecar, tests/api/test_forms.py.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.email import links, service
from backend.email.sequences import service as sequences
from backend.platform import incidents, outbox
from backend.platform.outbox import JobContext
from models import (
    AlertPriority,
    InboundEvent,
    Lead,
    LeadMessage,
    Membership,
    Operator,
    ProposalTemplate,
    Role,
    Workspace,
    utcnow,
)

ALERT_RULE = "lead.new"
# The inbox's name for inquiries from the lead form, and their one event type.
INBOX_PROVIDER = "leadform"
INQUIRY_EVENT = "lead.inquiry"
# The outbox job that announces a new lead (backend/leads/jobs.py declares it).
ANNOUNCE_KIND = "lead.announce"


@dataclass(frozen=True)
class Inquiry:
    """A validated submission (backend/api/forms.py validates)."""

    name: str
    email: str
    phone: str | None = None
    company: str | None = None
    service_type: str | None = None
    event_date: dt.date | None = None
    message: str | None = None
    marketing_consent: bool = False

    def payload(self) -> dict[str, Any]:
        """The inquiry as the inbox stores it (JSON): the form's request stores only this."""
        return {
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "company": self.company,
            "service_type": self.service_type,
            "event_date": self.event_date.isoformat() if self.event_date else None,
            "message": self.message,
            "marketing_consent": self.marketing_consent,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Inquiry:
        event_date = payload.get("event_date")
        return cls(
            name=payload["name"],
            email=payload["email"],
            phone=payload.get("phone"),
            company=payload.get("company"),
            service_type=payload.get("service_type"),
            event_date=dt.date.fromisoformat(event_date) if event_date else None,
            message=payload.get("message"),
            marketing_consent=bool(payload.get("marketing_consent")),
        )


@dataclass(frozen=True)
class Captured:
    lead_id: int
    new: bool


def capture_stored(session: Session, event: InboundEvent) -> None:
    """The inbox's handler for a stored inquiry: captured as received (its time is the
    request's, not the job's)."""
    if event.workspace_id is None:  # the form stores every inquiry with its workspace
        raise ValueError("a stored inquiry without a workspace")
    inquiry = Inquiry.from_payload(event.payload)
    capture(session, event.workspace_id, inquiry, now=event.received_at)


def form_url(slug: str) -> str:
    return f"{get_settings().public_sidecar_url.rstrip('/')}/forms/{slug}"


def capture(
    session: Session, workspace_id: int, inquiry: Inquiry, *, now: dt.datetime | None = None
) -> Captured:
    """Record the inquiry in the caller's transaction: a few statements (the lead's upsert,
    its message and, for a new lead, the ``lead.announce`` job), nothing loaded."""
    now = now or utcnow()
    email = service.normalise(inquiry.email)
    # The statements are built once a process and run on the session's connection (Core):
    # building them anew and the ORM's bulk-DML path cost more CPU than the database's work.
    # What the session holds unwritten is written first, as its own execute would have.
    if session.autoflush:
        session.flush()
    connection = session.connection()
    statements = _statements(connection.dialect.name)
    values = {
        "v_workspace_id": workspace_id,
        "v_email": email,
        "v_name": inquiry.name,
        "v_phone": inquiry.phone,
        "v_company": inquiry.company,
        "v_service_type": inquiry.service_type,
        "v_event_date": inquiry.event_date,
        "v_message": inquiry.message,
        "v_marketing_consent": inquiry.marketing_consent,
        "v_now": now,
    }
    lead_id = connection.execute(statements.insert_lead, values).scalar()
    new = lead_id is not None
    if lead_id is None:
        lead_id = connection.execute(statements.repeat_lead, values).scalar_one()
    if inquiry.message:
        connection.execute(
            statements.insert_message,
            {
                "v_workspace_id": workspace_id,
                "v_lead_id": lead_id,
                "v_at": now,
                "v_body": inquiry.message,
            },
        )
    if new:
        # Only the inserting transaction announces; the key makes it once per lead whatever
        # happens (a retried transaction, a replayed request).
        outbox.enqueue(
            session,
            kind=ANNOUNCE_KIND,
            payload={"lead_id": lead_id, "at": now.isoformat()},
            idempotency_key=f"lead:{lead_id}:announce",
            workspace_id=workspace_id,
        )
    return Captured(lead_id=lead_id, new=new)


@dataclass(frozen=True)
class _Statements:
    insert_lead: Any
    repeat_lead: Any
    insert_message: Any


@functools.cache
def _statements(dialect: str) -> _Statements:
    """``capture``'s statements for a dialect, with bound parameters (``v_`` and the names of
    its ``values``: an UPDATE may not bind a column's own name)."""
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = bindparam("v_now", type_=Lead.created_at.type)
    insert_lead = (
        insert_for(Lead)
        .values(
            workspace_id=bindparam("v_workspace_id"),
            email=bindparam("v_email"),
            name=bindparam("v_name"),
            phone=bindparam("v_phone"),
            company=bindparam("v_company"),
            service_type=bindparam("v_service_type"),
            event_date=bindparam("v_event_date"),
            message=bindparam("v_message"),
            marketing_consent=bindparam("v_marketing_consent"),
            source="website",
            status="new",
            inquiries=1,
            last_inquiry_at=now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["workspace_id", "email"])
        .returning(Lead.id)
    )
    # A repeat: one more inquiry, empty fields filled, consent given once kept until they
    # unsubscribe.
    repeat_lead = (
        update(Lead)
        .where(
            Lead.workspace_id == bindparam("v_workspace_id"),
            Lead.email == bindparam("v_email", type_=Lead.email.type),
        )
        .values(
            inquiries=Lead.inquiries + 1,
            last_inquiry_at=now,
            updated_at=now,
            phone=func.coalesce(Lead.phone, bindparam("v_phone", type_=Lead.phone.type)),
            company=func.coalesce(Lead.company, bindparam("v_company", type_=Lead.company.type)),
            service_type=func.coalesce(
                Lead.service_type, bindparam("v_service_type", type_=Lead.service_type.type)
            ),
            event_date=func.coalesce(
                Lead.event_date, bindparam("v_event_date", type_=Lead.event_date.type)
            ),
            message=func.coalesce(Lead.message, bindparam("v_message", type_=Lead.message.type)),
            marketing_consent=or_(
                Lead.marketing_consent,
                bindparam("v_marketing_consent", type_=Lead.marketing_consent.type),
            ),
        )
        .returning(Lead.id)
    )
    insert_message = insert(LeadMessage).values(
        workspace_id=bindparam("v_workspace_id"),
        lead_id=bindparam("v_lead_id"),
        at=bindparam("v_at", type_=LeadMessage.at.type),
        kind="inquiry",
        body=bindparam("v_body"),
    )
    return _Statements(insert_lead, repeat_lead, insert_message)


def announce(session: Session, job: JobContext) -> None:
    """The ``lead.announce`` job: a new lead's alert, the owners' notification, the proposal
    and the sequence enrolments, as of the inquiry's time (``at``). It reads the lead as it is
    now: a repeat inquiry that came first may have filled a field the first left empty. All
    in the job's transaction, which completes the job: a rerun after a crash does it again
    from scratch, and the e-mails' dedupe keys and the alert's grouping hold anyway."""
    lead = session.get(Lead, int(job.payload["lead_id"]))
    if lead is None:
        return  # erased since (a person's data deleted on request): nobody to announce
    workspace = session.get_one(Workspace, lead.workspace_id)
    at = dt.datetime.fromisoformat(str(job.payload["at"]))
    _announce(
        session,
        workspace,
        lead.id,
        Inquiry(
            name=lead.name,
            email=lead.email,
            service_type=lead.service_type,
            message=lead.message,
        ),
        lead.email,
        at,
    )


def _announce(
    session: Session,
    workspace: Workspace,
    lead_id: int,
    inquiry: Inquiry,
    email: str,
    now: dt.datetime,
) -> None:
    about = f" \u2013 {inquiry.service_type}" if inquiry.service_type else ""
    incidents.raise_incident(
        session,
        workspace_id=workspace.id,
        rule=ALERT_RULE,
        message=f"New lead: {inquiry.name}{about}",
        priority=AlertPriority.NORMAL,
        entity_type="lead",
        entity_id=str(lead_id),
        who="lead form",
        now=now,
    )
    sequences.enrol(
        session, workspace_id=workspace.id, lead_id=lead_id, trigger="lead_created", at=now
    )
    settings = get_settings()
    lead_url = f"{settings.public_console_url.rstrip('/')}/leads/{lead_id}"
    owners = session.execute(
        select(Operator.id, Operator.email, Operator.name)
        .join(Membership, Membership.operator_id == Operator.id)
        .where(Membership.workspace_id == workspace.id, Membership.role == Role.OWNER)
        .order_by(Operator.id)
    ).all()
    for owner in owners:
        service.queue_email(
            session,
            workspace_id=workspace.id,
            purpose="new_lead_notification",
            to_email=owner.email,
            to_name=owner.name,
            # The person it concerns is its reader, the owner: what they do with it (open it,
            # click through to the lead) is not the lead's engagement (backend/email/events.py).
            subject_type="operator",
            subject_id=owner.id,
            context={
                "business_name": workspace.name,
                "recipient_name": owner.name,
                "lead_name": inquiry.name,
                "lead_email": email,
                "service_type": inquiry.service_type or "your services",
                "message": inquiry.message or "(no message)",
                "lead_url": lead_url,
            },
            dedupe_key=f"lead:{lead_id}:notify:{owner.id}",
        )
    template = _proposal_template(session, workspace.id, inquiry.service_type)
    if template is not None:
        # The template's page for this lead, a signed link (backend/email/links.py; the
        # Pipeline issue builds proposal pages of their own), in the proposal and its reminders.
        proposal_url = links.url_for(
            links.Link(
                workspace_id=workspace.id,
                kind="proposal",
                subject_type="lead",
                subject_id=lead_id,
                target_id=template.id,
            )
        )
        # The proposal answers the inquiry the lead just sent, so it goes whether or not they
        # ticked marketing consent; its purpose is in the marketing group, so an address that
        # unsubscribed from offers and proposals is skipped (queue_email records why).
        service.queue_email(
            session,
            workspace_id=workspace.id,
            purpose="proposal_sent",
            to_email=email,
            to_name=inquiry.name,
            subject_type="lead",
            subject_id=lead_id,
            context={
                "business_name": workspace.name,
                "recipient_name": inquiry.name,
                "proposal_title": template.title,
                "proposal_body": template.body,
                "proposal_url": proposal_url,
            },
            dedupe_key=f"lead:{lead_id}:proposal:{template.id}",
        )
        sequences.enrol(
            session,
            workspace_id=workspace.id,
            lead_id=lead_id,
            trigger="proposal_sent",
            at=now,
            context={"proposal_title": template.title, "proposal_url": proposal_url},
        )


def _proposal_template(
    session: Session, workspace_id: int, service_type: str | None
) -> ProposalTemplate | None:
    if not service_type:
        return None
    return session.scalars(
        select(ProposalTemplate)
        .where(
            ProposalTemplate.workspace_id == workspace_id,
            ProposalTemplate.published.is_(True),
            func.lower(ProposalTemplate.service_type) == service_type.strip().lower(),
        )
        .order_by(ProposalTemplate.id)
    ).first()
