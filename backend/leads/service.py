"""What an operator does on a lead's page: write a note into its history, stop one of its
sequence enrolments. Owners and admins; viewers only look. Scoped by the actor's workspace: a
lead or enrolment of another workspace is "not found", in the same words as a missing one.

Tested in tests/leads/test_service.py.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.email.sequences import stops
from backend.leads.views import NOT_FOUND
from backend.platform import audit
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, NotFound
from models import Lead, LeadMessage, SequenceEnrolment, utcnow

NOTE_LIMIT = 4000
OPERATOR_STOP = "Stopped by an operator"


def _lead_id(session: Session, workspace_id: int, lead_id: int) -> int:
    found = session.scalar(
        select(Lead.id).where(Lead.workspace_id == workspace_id, Lead.id == lead_id)
    )
    if found is None:
        raise NotFound(NOT_FOUND)
    return found


def add_note(
    session: Session, *, actor: Actor, lead_id: int, body: str, now: dt.datetime | None = None
) -> LeadMessage:
    """An operator's note in the lead's history (kind ``note``)."""
    actor.require_change("write notes on leads")
    text = body.strip()
    if not text:
        raise InvalidInput("Write the note first.", field="note")
    if len(text) > NOTE_LIMIT:
        raise InvalidInput(
            f"A note is at most {NOTE_LIMIT} characters; this one has {len(text)}.", field="note"
        )
    found = _lead_id(session, actor.workspace_id, lead_id)
    note = LeadMessage(
        workspace_id=actor.workspace_id, lead_id=found, at=now or utcnow(), kind="note", body=text
    )
    session.add(note)
    session.flush()
    return note


def stop_enrolment(
    session: Session,
    *,
    actor: Actor,
    lead_id: int,
    enrolment_id: int,
    now: dt.datetime | None = None,
) -> bool:
    """Stop one of the lead's active enrolments, as the operator: True when it stopped, False
    when it had already completed or stopped (it keeps its first reason). The audit trail
    names who (named when read, as every audit row is)."""
    actor.require_change("stop sequences")
    found = _lead_id(session, actor.workspace_id, lead_id)
    enrolment = session.scalar(
        select(SequenceEnrolment.id).where(
            SequenceEnrolment.workspace_id == actor.workspace_id,
            SequenceEnrolment.lead_id == found,
            SequenceEnrolment.id == enrolment_id,
        )
    )
    if enrolment is None:
        raise NotFound("This lead has no such sequence enrolment.")
    stopped = stops.stop_enrolment(
        session,
        workspace_id=actor.workspace_id,
        enrolment_id=enrolment,
        reason=OPERATOR_STOP,
        at=now or utcnow(),
    )
    if stopped:
        audit.record(
            session,
            actor=actor,
            action="sequence_enrolment.stop",
            target=f"sequence_enrolment:{enrolment}",
            details={"lead_id": found},
        )
    return stopped
