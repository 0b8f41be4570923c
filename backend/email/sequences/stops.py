"""Stopping a lead's active sequence enrolments, with the reason the console shows.

Every stop goes through here: a spam report or a bounce (backend/email/events.py), a reply
(Inbound Parse), an unsubscribe, the conversion (a contract signed or paid) and an operator's
Stop. Scoped by workspace: a lead id of another workspace stops nothing.

Tested in tests/email/test_sequences.py (every reason) and tests/email/test_events.py.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import EmailMessage, EnrolmentStatus, SequenceEnrolment

# The reasons the console shows, one per way an enrolment stops.
REPLIED = "The lead replied"
UNSUBSCRIBED = "Unsubscribed"
BOUNCED = "The address bounced"
SPAM_REPORT = "The lead reported our mail as spam"
# A suppression's reason (backend/email/service.suppress) -> the stop's.
BY_SUPPRESSION = {"unsubscribe": UNSUBSCRIBED, "bounce": BOUNCED, "spam_report": SPAM_REPORT}


def stop_lead_enrolments(
    session: Session,
    *,
    workspace_id: int,
    lead_id: int,
    reason: str,
    at: dt.datetime,
    sequence_id: int | None = None,
) -> int:
    """Stop the lead's active enrolments (only ``sequence_id``'s when given); how many stopped.
    An enrolment already completed or stopped keeps its first reason."""
    statement = update(SequenceEnrolment).where(
        SequenceEnrolment.workspace_id == workspace_id,
        SequenceEnrolment.lead_id == lead_id,
        SequenceEnrolment.status == EnrolmentStatus.ACTIVE.value,
    )
    if sequence_id is not None:
        statement = statement.where(SequenceEnrolment.sequence_id == sequence_id)
    stopped = session.execute(
        statement.values(
            status=EnrolmentStatus.STOPPED.value,
            stop_reason=reason,
            stopped_at=at,
            next_due_at=None,
        ).returning(SequenceEnrolment.id)
    ).all()
    return len(stopped)


def stop_enrolment(
    session: Session,
    *,
    workspace_id: int,
    enrolment_id: int,
    reason: str,
    at: dt.datetime,
) -> bool:
    """An operator's Stop of one enrolment (the lead page, the Sequences page): True when it was
    active and is now stopped with ``reason``; False when it is not the workspace's, or was
    already completed or stopped (it keeps its first reason)."""
    stopped = session.execute(
        update(SequenceEnrolment)
        .where(
            SequenceEnrolment.workspace_id == workspace_id,
            SequenceEnrolment.id == enrolment_id,
            SequenceEnrolment.status == EnrolmentStatus.ACTIVE.value,
        )
        .values(
            status=EnrolmentStatus.STOPPED.value,
            stop_reason=reason,
            stopped_at=at,
            next_due_at=None,
        )
        .returning(SequenceEnrolment.id)
    ).all()
    return bool(stopped)


def stop_on_conversion(
    session: Session, *, workspace_id: int, lead_id: int, at: dt.datetime, what: str
) -> int:
    """The lead converted (``what``: "contract signed", "paid"): no more follow-ups. For the
    pipeline (issue 16) to call where a contract is signed or paid, in that transaction; how
    many enrolments stopped."""
    return stop_lead_enrolments(
        session,
        workspace_id=workspace_id,
        lead_id=lead_id,
        reason=f"Converted: {what}"[:200],
        at=at,
    )


def stop_after_unsubscribe(
    session: Session, *, workspace_id: int, message_id: int, at: dt.datetime
) -> int:
    """The person a message was about left a group by its link (one-click unsubscribe, the
    preferences page): their follow-ups stop now, not at the next step's suppression check,
    whichever group they left (they asked for less mail). Only a lead's: a team member
    unsubscribing from a new-lead notification stops nothing of the lead's."""
    lead_id = session.scalars(
        select(EmailMessage.subject_id).where(
            EmailMessage.id == message_id,
            EmailMessage.workspace_id == workspace_id,
            EmailMessage.subject_type == "lead",
        )
    ).first()
    if lead_id is None:
        return 0
    return stop_lead_enrolments(
        session, workspace_id=workspace_id, lead_id=lead_id, reason=UNSUBSCRIBED, at=at
    )
