"""The Shows list: claims, buyers and value per show, searchable, per workspace."""

from __future__ import annotations

from sqlalchemy.orm import Session

from backend.shows import listing as shows
from models import Claim, Invoice, InvoiceStatus, Show, ShowItem, ShowStatus
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


def _invoice(session: Session, show: Show, buyer: str, attempt: int, status: InvoiceStatus) -> None:
    session.add(
        Invoice(
            workspace_id=show.workspace_id,
            show_id=show.id,
            provider="stripe",
            buyer_handle=buyer,
            buyer_platform_id=buyer,
            attempt=attempt,
            status=status,
        )
    )


def test_invoice_counts_per_show_count_each_buyers_current_invoice(session: Session) -> None:
    ws = factories.workspace(session)
    first = Show(workspace_id=ws.id, title="Friday Vintage", status=ShowStatus.ENDED)
    second = Show(workspace_id=ws.id, title="Saturday Shoes", status=ShowStatus.ENDED)
    bare = Show(workspace_id=ws.id, title="Sunday Live", status=ShowStatus.LIVE)
    session.add_all([first, second, bare])
    session.flush()
    _invoice(session, first, "u1", 1, InvoiceStatus.PAID)
    _invoice(session, first, "u2", 1, InvoiceStatus.SENT)
    _invoice(session, first, "u3", 1, InvoiceStatus.ERROR)
    # A voided invoice replaced by a regenerated one counts once, as what replaced it.
    _invoice(session, first, "u4", 1, InvoiceStatus.VOID)
    _invoice(session, first, "u4", 2, InvoiceStatus.SENT)
    _invoice(session, second, "u1", 1, InvoiceStatus.DRAFT)
    _invoice(session, second, "u5", 1, InvoiceStatus.VOID)
    session.commit()

    listed = {s.title: s.invoices for s in shows.list_shows(session, workspace_id=ws.id)}
    assert listed == {
        "Friday Vintage": {"paid": 1, "sent": 2, "error": 1},
        "Saturday Shoes": {"draft": 1, "void": 1},
        "Sunday Live": {},
    }
