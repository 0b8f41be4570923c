"""The studio's leads as the Leads page shows them in the demo: leads in several statuses and
sources, their inquiries, replies and notes, e-mails in every tracking state (queued, delivered,
opened, clicked, bounced, skipped with the reason) and a follow-up sequence, one enrolment
running and one stopped by a reply.

Made as the product would have left them, without the outbox: the demo's e-mails have no send
job (the queued one stays queued), since the studio has no SendGrid connected.

Tested in tests/demo/test_leads.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from models import (
    EmailMessage,
    EmailSequence,
    Lead,
    LeadMessage,
    SequenceEnrolment,
    SequenceStep,
)

PROPOSAL_TITLE = "Recital media package"


@dataclass(frozen=True)
class _Extra:
    name: str
    email: str
    status: str
    source: str
    service_type: str | None
    company: str | None
    days_ago: float
    inquiry: str


# Leads beyond the three the seed makes, newest last.
EXTRA_LEADS = (
    _Extra(
        "Marco Bianchi",
        "marco@bianchi-events.example",
        "engaged",
        "website",
        "recital media",
        "Bianchi Events",
        9,
        "Two dance schools, one evening. Can you film both halves?",
    ),
    _Extra(
        "Lena Fischer",
        "lena.fischer@mail.example",
        "email_invalid",
        "website",
        "recital media",
        None,
        7,
        "Piano recital for 12 students in March.",
    ),
    _Extra(
        "Oakridge Middle School",
        "pta@oakridge.example",
        "proposal_viewed",
        "referral",
        "recital media",
        "Oakridge PTA",
        4,
        "Our spring concert; a parent recommended you.",
    ),
    _Extra(
        "Priya Natarajan",
        "priya.n@studio.example",
        "unsubscribed",
        "website",
        "portrait session",
        None,
        3,
        "Family portraits before the recital.",
    ),
    _Extra(
        "Tom Adeyemi",
        "tom@adeyemi.example",
        "new",
        "phone",
        "wedding",
        None,
        0.2,
        "Wedding in October, 120 guests.",
    ),
)


def _email(
    ws: int, lead: Lead, now: dt.datetime, status: str, days_ago: float, **extra: Any
) -> EmailMessage:
    sent = now - dt.timedelta(days=days_ago)
    values: dict[str, Any] = {
        "workspace_id": ws,
        "purpose": "proposal_sent",
        "template": "proposal_sent",
        "to_email": lead.email,
        "to_name": lead.name,
        "subject_type": "lead",
        "subject_id": lead.id,
        "context": {"proposal_title": PROPOSAL_TITLE},
        "dedupe_key": f"demo:lead:{lead.id}:{extra.get('purpose', 'proposal_sent')}",
        "status": status,
        "created_at": sent,
    }
    if status not in ("queued", "skipped"):
        values |= {"sent_at": sent, "delivered_at": sent + dt.timedelta(seconds=4)}
        values["last_event_at"] = sent + dt.timedelta(seconds=4)
    values |= extra
    if "template" not in extra and "purpose" in extra:
        values["template"] = extra["purpose"]
    return EmailMessage(**values)


def fill(session: Session, workspace_id: int, now: dt.datetime, first: list[Lead]) -> None:
    """Give the seed's three leads (Hannah Kim, Bright Steps, Rita Osei) their history and add
    the others."""
    ws = workspace_id
    hannah, bright, rita = first
    for lead, days, company, service, source in (
        (hannah, 12, None, "recital media", "website"),
        (bright, 10, "Bright Steps Dance", "recital media", "website"),
        (rita, 5, None, "wedding", "referral"),
    ):
        lead.created_at = lead.last_inquiry_at = now - dt.timedelta(days=days)
        lead.company, lead.service_type, lead.source = company, service, source
    leads = list(first)
    for extra in EXTRA_LEADS:
        at = now - dt.timedelta(days=extra.days_ago)
        leads.append(
            Lead(
                workspace_id=ws,
                email=extra.email,
                name=extra.name,
                status=extra.status,
                source=extra.source,
                service_type=extra.service_type,
                company=extra.company,
                message=extra.inquiry,
                created_at=at,
                last_inquiry_at=at,
                time_zone="America/Chicago" if extra.source == "referral" else None,
            )
        )
    session.add_all(leads[3:])
    session.flush()
    # Each lead's inquiries (Bright Steps wrote twice).
    for lead in leads:
        session.add(
            LeadMessage(
                workspace_id=ws,
                lead_id=lead.id,
                at=lead.created_at,
                kind="inquiry",
                body=lead.message or "",
            )
        )
    second = now - dt.timedelta(days=2)
    bright.last_inquiry_at = second
    session.add(
        LeadMessage(
            workspace_id=ws,
            lead_id=bright.id,
            at=second,
            kind="inquiry",
            body="Following up: is the June 14 date still free?",
        )
    )
    marco, lena, oakridge, priya, tom = leads[3:]
    hour = dt.timedelta(hours=1)
    session.add_all(
        [
            _email(
                ws,
                hannah,
                now,
                "clicked",
                12,
                first_open_at=hannah.created_at + hour,
                last_open_at=hannah.created_at + 5 * hour,
                open_count=3,
                first_click_at=hannah.created_at + 5 * hour,
                last_click_at=hannah.created_at + 5 * hour,
                click_count=1,
                last_event_at=hannah.created_at + 5 * hour,
            ),
            _email(ws, bright, now, "delivered", 10),
            _email(ws, rita, now, "delivered", 5, purpose="questionnaire_sent", context={}),
            _email(
                ws,
                marco,
                now,
                "clicked",
                9,
                first_open_at=marco.created_at + hour,
                last_open_at=marco.created_at + 2 * hour,
                open_count=2,
                first_click_at=marco.created_at + 2 * hour,
                last_click_at=marco.created_at + 2 * hour,
                click_count=1,
                last_event_at=marco.created_at + 2 * hour,
            ),
            _email(
                ws,
                lena,
                now,
                "bounced",
                7,
                failure_reason="550 5.1.1 The email account that you tried to reach does not "
                "exist.",
                last_event_at=lena.created_at + dt.timedelta(seconds=5),
            ),
            _email(
                ws,
                oakridge,
                now,
                "opened",
                4,
                first_open_at=oakridge.created_at + 3 * hour,
                last_open_at=oakridge.created_at + 3 * hour,
                open_count=1,
                last_event_at=oakridge.created_at + 3 * hour,
            ),
            _email(
                ws,
                priya,
                now,
                "skipped",
                3,
                purpose="proposal_reminder",
                context={"proposal_title": PROPOSAL_TITLE},
                skip_reason="unsubscribed from offers and proposals",
            ),
            _email(ws, tom, now, "queued", 0.2, purpose="questionnaire_sent", context={}),
        ]
    )
    session.add_all(
        [
            LeadMessage(
                workspace_id=ws,
                lead_id=marco.id,
                at=marco.created_at + 6 * hour,
                kind="reply",
                body="Looks great. Could the highlight reel be 5 minutes instead of 3?",
            ),
            LeadMessage(
                workspace_id=ws,
                lead_id=marco.id,
                at=marco.created_at + 8 * hour,
                kind="note",
                body="Called Marco: 5-minute reel is fine, send the contract after Friday.",
            ),
        ]
    )
    _sequence(session, ws, now, bright, marco)


def _sequence(session: Session, ws: int, now: dt.datetime, running: Lead, replied: Lead) -> None:
    sequence = EmailSequence(
        workspace_id=ws, name="Proposal follow-up", trigger="proposal_sent", created_at=now
    )
    session.add(sequence)
    session.flush()
    for position, days in ((1, 2), (2, 5), (3, 10)):
        session.add(
            SequenceStep(
                workspace_id=ws,
                sequence_id=sequence.id,
                position=position,
                delay_minutes=days * 24 * 60,
                purpose="proposal_reminder",
                window_start_hour=9,
                window_end_hour=17,
            )
        )
    session.add_all(
        [
            SequenceEnrolment(
                workspace_id=ws,
                sequence_id=sequence.id,
                lead_id=running.id,
                next_position=2,
                next_due_at=now + dt.timedelta(days=1),
                created_at=running.created_at,
            ),
            SequenceEnrolment(
                workspace_id=ws,
                sequence_id=sequence.id,
                lead_id=replied.id,
                status="stopped",
                next_position=2,
                stop_reason="The lead replied",
                stopped_at=replied.created_at + dt.timedelta(hours=6),
                created_at=replied.created_at,
            ),
        ]
    )
