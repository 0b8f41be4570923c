"""The Jobs page's list of received webhooks is read a page at a time, in this workspace."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from backend.platform import inbox
from models import InboundEvent, InboundStatus
from tests import factories


def test_recent_webhooks_come_a_page_at_a_time_newest_first(session: Session) -> None:
    ws = factories.workspace(session)
    other = factories.workspace(session, slug="other")
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for n in range(25):
        for workspace_id in (ws.id, other.id):
            session.add(
                InboundEvent(
                    provider="stripe",
                    external_id=f"evt_{workspace_id}_{n}",
                    event_type="invoice.paid",
                    workspace_id=workspace_id,
                    payload={},
                    status=InboundStatus.HANDLED,
                    received_at=start + dt.timedelta(minutes=n),
                )
            )
    session.flush()

    def page(offset: int) -> list[str]:
        rows = inbox.recent(session, workspace_id=ws.id, limit=10, offset=offset)
        return [row.external_id for row in rows]

    assert page(0) == [f"evt_{ws.id}_{n}" for n in range(24, 14, -1)]
    assert page(10) == [f"evt_{ws.id}_{n}" for n in range(14, 4, -1)]
    assert page(20) == [f"evt_{ws.id}_{n}" for n in range(4, -1, -1)]
    assert page(30) == []
