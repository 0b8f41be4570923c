"""The Shows list: claims, buyers and value per show, searchable, per workspace."""

from __future__ import annotations

from sqlalchemy.orm import Session

from backend.services import shows
from models import Claim, Show, ShowItem, ShowStatus
from tests import factories


def test_show_totals_and_search(session: Session) -> None:
    ws = factories.workspace(session)
    other = factories.workspace(session, slug="other")
    show = Show(workspace_id=ws.id, title="Friday Vintage", status=ShowStatus.ENDED)
    empty = Show(workspace_id=ws.id, title="Monday Books", status=ShowStatus.LIVE)
    foreign = Show(workspace_id=other.id, title="Friday Elsewhere", status=ShowStatus.ENDED)
    session.add_all([show, empty, foreign])
    session.flush()
    priced = ShowItem(workspace_id=ws.id, show_id=show.id, number=1, title="Hat", price_cents=1500)
    unpriced = ShowItem(
        workspace_id=ws.id, show_id=show.id, number=2, title="Bag", price_cents=None
    )
    session.add_all([priced, unpriced])
    session.flush()
    for user, item, qty in (("u1", priced, 2), ("u1", unpriced, 1), ("u2", priced, 1)):
        session.add(
            Claim(
                workspace_id=ws.id,
                show_id=show.id,
                item_id=item.id,
                platform_user_id=user,
                buyer_handle=user,
                quantity=qty,
            )
        )
    session.commit()

    listed = {s.title: s for s in shows.list_shows(session, workspace_id=ws.id)}
    assert set(listed) == {"Friday Vintage", "Monday Books"}
    friday = listed["Friday Vintage"]
    assert (friday.claims, friday.buyers, friday.total_cents, friday.unpriced_items) == (
        3,
        2,
        4500,
        1,
    )
    assert listed["Monday Books"].claims == 0
    found = shows.list_shows(session, workspace_id=ws.id, search="vint")
    assert [s.title for s in found] == ["Friday Vintage"]
