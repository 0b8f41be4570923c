"""The timeline names the person each event is about, from this workspace's rows only."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from backend.engagement import timeline as engagement
from models import Buyer, EngagementEvent, Lead
from tests import factories


def _event(session: Session, workspace_id: int, kind: str, subject_id: int, n: int) -> None:
    session.add(
        EngagementEvent(
            workspace_id=workspace_id,
            source="stripe",
            source_event_id=f"evt_{n}",
            subject_type=kind,
            subject_id=subject_id,
            name="invoice.paid",
            occurred_at=dt.datetime(2026, 1, 1, 12, n, tzinfo=dt.UTC),
        )
    )


def test_timeline_says_who_by_handle_or_name_never_by_id(session: Session) -> None:
    ws = factories.workspace(session)
    other = factories.workspace(session, slug="other")
    maria = Buyer(workspace_id=ws.id, platform_user_id="fb_1", handle="maria.k")
    lead = Lead(workspace_id=ws.id, email="ann@example.com", name="Ann Lee")
    elsewhere = Buyer(workspace_id=other.id, platform_user_id="fb_2", handle="secret.buyer")
    session.add_all([maria, lead, elsewhere])
    session.flush()
    _event(session, ws.id, "buyer", maria.id, 1)
    _event(session, ws.id, "lead", lead.id, 2)
    _event(session, ws.id, "buyer", elsewhere.id, 3)  # an id from another workspace
    session.flush()

    rows = engagement.timeline(session, workspace_id=ws.id)
    assert [row.who for row in rows] == ["A buyer no longer on file", "Ann Lee", "maria.k"]
    assert all("#" not in row.who for row in rows)
