"""An operator's note and Stop on a lead page: owners and admins only, in their own workspace."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.leads import service, views
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, NotFound, PermissionDenied
from models import (
    AuditLog,
    EmailSequence,
    Lead,
    LeadMessage,
    Role,
    SequenceEnrolment,
)
from tests import factories


def _world(session: Session) -> tuple[int, int, int, int]:
    """(workspace, its lead, another workspace's lead, that lead's active enrolment)"""
    ws = factories.workspace(session).id
    other = factories.workspace(session, slug="other").id
    ids = []
    for workspace in (ws, other):
        lead = Lead(workspace_id=workspace, name="Jane", email="jane@example.com")
        session.add(lead)
        session.flush()
        ids.append(lead.id)
    session.commit()
    return ws, ids[0], other, ids[1]


def _enrol(session: Session, ws: int, lead_id: int, name: str = "Follow-up") -> int:
    sequence = EmailSequence(workspace_id=ws, name=name, trigger="lead_created")
    session.add(sequence)
    session.flush()
    enrolment = SequenceEnrolment(workspace_id=ws, sequence_id=sequence.id, lead_id=lead_id)
    session.add(enrolment)
    session.flush()
    return enrolment.id


def test_an_admin_writes_a_note_into_the_leads_history(session: Session) -> None:
    ws, lead, _other, _theirs = _world(session)
    admin = Actor(1, ws, Role.ADMIN)
    service.add_note(session, actor=admin, lead_id=lead, body="  Called her; wants June.  ")
    session.commit()
    (note,) = session.scalars(select(LeadMessage)).all()
    assert (note.kind, note.body, note.lead_id) == ("note", "Called her; wants June.", lead)
    with pytest.raises(InvalidInput):
        service.add_note(session, actor=admin, lead_id=lead, body="   ")
    with pytest.raises(PermissionDenied):
        service.add_note(session, actor=Actor(2, ws, Role.VIEWER), lead_id=lead, body="Hi")


def test_a_note_on_another_workspaces_lead_is_not_found(session: Session) -> None:
    ws, _lead, _other, theirs = _world(session)
    with pytest.raises(NotFound, match=views.NOT_FOUND):
        service.add_note(session, actor=Actor(1, ws, Role.OWNER), lead_id=theirs, body="Hi")
    session.rollback()
    assert session.scalars(select(LeadMessage)).all() == []


def test_stop_stops_one_enrolment_with_the_reason_and_an_audit_row(session: Session) -> None:
    ws, lead, other, theirs = _world(session)
    first = _enrol(session, ws, lead, "Follow-up")
    second = _enrol(session, ws, lead, "Nurture")
    foreign = _enrol(session, other, theirs)
    session.commit()
    owner = Actor(7, ws, Role.OWNER)
    assert service.stop_enrolment(session, actor=owner, lead_id=lead, enrolment_id=first)
    session.commit()
    states = {e.id: (e.status, e.stop_reason) for e in session.scalars(select(SequenceEnrolment))}
    assert states[first] == ("stopped", service.OPERATOR_STOP)
    assert states[second] == ("active", None)
    assert states[foreign] == ("active", None)
    assert session.scalars(select(AuditLog.action)).all() == ["sequence_enrolment.stop"]
    # A second Stop changes nothing and says so.
    assert not service.stop_enrolment(session, actor=owner, lead_id=lead, enrolment_id=first)
    # Another workspace's enrolment, or one of another lead: not found.
    with pytest.raises(NotFound):
        service.stop_enrolment(session, actor=owner, lead_id=lead, enrolment_id=foreign)
    with pytest.raises(NotFound):
        service.stop_enrolment(session, actor=owner, lead_id=theirs, enrolment_id=foreign)
    with pytest.raises(PermissionDenied):
        service.stop_enrolment(
            session, actor=Actor(8, ws, Role.VIEWER), lead_id=lead, enrolment_id=second
        )
