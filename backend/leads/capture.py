"""Capturing a lead: one lead per (workspace, lower-cased trimmed e-mail). A new lead is its
first message, an alert (one per lead), a ``new_lead_notification`` to each owner and, when a
published proposal template matches its service type, a ``proposal_sent`` to the lead; it is
enrolled in the workspace's ``lead_created`` sequences (and ``proposal_sent`` ones when a
proposal goes: backend/email/sequences/service.py), in the same transaction. A repeat
inquiry updates the lead (inquiries + 1, last inquiry, empty fields filled, its message
appended) and tells nobody again.

Concurrent inquiries from one address make one lead: the insert is ``ON CONFLICT DO NOTHING``
on the (workspace_id, email) unique constraint, and whoever loses the race counts its inquiry
with an atomic ``inquiries = inquiries + 1``.

Tested in tests/leads/test_capture.py and, through the sidecar, tests/api/test_forms.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.db import conflict_insert
from backend.email import links, service
from backend.email.sequences import service as sequences
from backend.platform import incidents
from models import (
    AlertPriority,
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


@dataclass(frozen=True)
class Captured:
    lead_id: int
    new: bool


def form_url(slug: str) -> str:
    return f"{get_settings().public_sidecar_url.rstrip('/')}/forms/{slug}"


def capture(
    session: Session, workspace: Workspace, inquiry: Inquiry, *, now: dt.datetime | None = None
) -> Captured:
    """Record the inquiry in the caller's transaction."""
    now = now or utcnow()
    email = service.normalise(inquiry.email)
    lead_id = session.execute(
        conflict_insert(session, Lead)
        .values(
            workspace_id=workspace.id,
            email=email,
            name=inquiry.name,
            phone=inquiry.phone,
            company=inquiry.company,
            service_type=inquiry.service_type,
            event_date=inquiry.event_date,
            message=inquiry.message,
            marketing_consent=inquiry.marketing_consent,
            source="website",
            status="new",
            inquiries=1,
            last_inquiry_at=now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["workspace_id", "email"])
        .returning(Lead.id)
    ).scalar()
    new = lead_id is not None
    if lead_id is None:
        lead_id = session.execute(
            update(Lead)
            .where(Lead.workspace_id == workspace.id, Lead.email == email)
            .values(
                inquiries=Lead.inquiries + 1,
                last_inquiry_at=now,
                updated_at=now,
                phone=func.coalesce(Lead.phone, inquiry.phone),
                company=func.coalesce(Lead.company, inquiry.company),
                service_type=func.coalesce(Lead.service_type, inquiry.service_type),
                event_date=func.coalesce(Lead.event_date, inquiry.event_date),
                message=func.coalesce(Lead.message, inquiry.message),
                # Consent given once stays given until they unsubscribe.
                marketing_consent=Lead.marketing_consent | inquiry.marketing_consent,
            )
            .returning(Lead.id)
            .execution_options(synchronize_session=False)
        ).scalar_one()
    if inquiry.message:
        session.add(
            LeadMessage(
                workspace_id=workspace.id,
                lead_id=lead_id,
                at=now,
                kind="inquiry",
                body=inquiry.message,
            )
        )
    if new:
        _announce(session, workspace, lead_id, inquiry, email, now)
    session.flush()
    return Captured(lead_id=lead_id, new=new)


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
