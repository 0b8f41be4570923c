"""The invoice panel's read side: the buyer rollup (totals, items, unpriced flags, the current
invoice), its status filter, handle search and pages, the summary and progress, CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.invoicing import panel as invoice_panel
from backend.platform.errors import NotFound
from models import Invoice, InvoiceStatus, Workspace
from tests.support.shows import MadeShow, make_show


@pytest.fixture
def workspace_id(engine: Engine) -> int:
    with Session(engine) as session:
        ws = Workspace(name="Shop", slug="shop", plan="pro")  # type: ignore[arg-type]
        session.add(ws)
        session.commit()
        return ws.id


def _invoice(
    engine: Engine,
    show: MadeShow,
    buyer: int,
    status: InvoiceStatus,
    *,
    attempt: int = 1,
    external_id: str | None = "in_x",
) -> int:
    with Session(engine) as session:
        row = Invoice(
            workspace_id=show.workspace_id,
            show_id=show.id,
            provider="stripe",
            buyer_handle=f"b{buyer:04d}",
            buyer_platform_id=show.buyers[buyer],
            attempt=attempt,
            status=status,
            external_id=f"{external_id}_{buyer}_{attempt}" if external_id else None,
            amount_cents=1234,
        )
        session.add(row)
        session.commit()
        return row.id


def test_the_rollup_groups_claims_by_buyer_with_totals_and_unpriced_flags(
    engine: Engine, workspace_id: int
) -> None:
    show = make_show(engine, workspace_id=workspace_id, buyers=4, unpriced=(2,))
    with Session(engine) as session:
        page = invoice_panel.rollup(session, workspace_id=workspace_id, show_id=show.id)
    assert page.total == 4 and [r.handle for r in page.rows] == ["b0000", "b0001", "b0002", "b0003"]
    first = page.rows[0]  # items 1, 2, 3; item 1 twice (b % 3 == 0), item 2 unpriced
    assert [(i.number, i.quantity, i.unit_price_cents) for i in first.items] == [
        (1, 2, 500),
        (2, 1, None),
        (3, 1, 1500),
    ]
    assert first.subtotal_cents == 2 * 500 + 1500 and first.unpriced == 1 and first.claims == 3
    assert first.email == "b0@buyers.example" and first.invoice is None
    assert page.rows[3].unpriced == 0  # items 4, 5, 6


def test_the_current_invoice_is_the_latest_attempt_and_filters_use_it(
    engine: Engine, workspace_id: int
) -> None:
    show = make_show(engine, workspace_id=workspace_id, buyers=5)
    _invoice(engine, show, 0, InvoiceStatus.VOID, attempt=1)
    _invoice(engine, show, 0, InvoiceStatus.SENT, attempt=2)
    _invoice(engine, show, 1, InvoiceStatus.PAID)
    _invoice(engine, show, 2, InvoiceStatus.ERROR, external_id=None)
    with Session(engine) as session:

        def handles(status: str = "", search: str = "") -> list[str]:
            page = invoice_panel.rollup(
                session, workspace_id=workspace_id, show_id=show.id, status=status, search=search
            )
            return [row.handle for row in page.rows]

        rows = invoice_panel.rollup(session, workspace_id=workspace_id, show_id=show.id).rows
        assert rows[0].invoice is not None and rows[0].invoice.attempt == 2
        assert handles("sent") == ["b0000"]
        assert handles("void") == []  # superseded by the regenerated invoice
        assert handles("paid") == ["b0001"] and handles("error") == ["b0002"]
        assert handles(invoice_panel.NO_INVOICE) == ["b0003", "b0004"]
        assert handles(search="@B0004") == ["b0004"]  # case-insensitive, "@" ignored
        assert handles("paid", search="b0000") == []

        summary = invoice_panel.summary(session, workspace_id=workspace_id, show_id=show.id)
    assert summary.buyers == 5 and summary.not_invoiced == 2
    assert summary.by_status == {"sent": 1, "paid": 1, "error": 1}
    assert (summary.progress.queued, summary.progress.done, summary.progress.failed) == (0, 2, 1)


def test_pages_cover_every_buyer_once(engine: Engine, workspace_id: int) -> None:
    show = make_show(engine, workspace_id=workspace_id, buyers=23, items=7)
    seen: list[str] = []
    with Session(engine) as session:
        for number in (1, 2, 3):
            page = invoice_panel.rollup(
                session, workspace_id=workspace_id, show_id=show.id, page=number, per_page=10
            )
            assert page.total == 23 and page.pages == 3
            seen += [row.platform_user_id for row in page.rows]
    assert sorted(seen) == sorted(show.buyers)


def test_progress_counts_queued_invoices_until_their_job_stores_them(
    engine: Engine, workspace_id: int
) -> None:
    show = make_show(engine, workspace_id=workspace_id, buyers=3)
    _invoice(engine, show, 0, InvoiceStatus.DRAFT, external_id=None)
    _invoice(engine, show, 1, InvoiceStatus.DRAFT, external_id=None)
    _invoice(engine, show, 2, InvoiceStatus.SENT)
    with Session(engine) as session:
        progress = invoice_panel.summary(
            session, workspace_id=workspace_id, show_id=show.id
        ).progress
    assert (progress.queued, progress.done, progress.failed) == (2, 1, 0)
    assert not progress.finished


def test_changes_since_returns_only_what_changed(engine: Engine, workspace_id: int) -> None:
    show = make_show(engine, workspace_id=workspace_id, buyers=2)
    first = _invoice(engine, show, 0, InvoiceStatus.SENT)
    _invoice(engine, show, 1, InvoiceStatus.SENT)
    mark = dt.datetime.now(dt.UTC)
    with Session(engine) as session:
        assert (
            invoice_panel.changes_since(
                session, workspace_id=workspace_id, show_id=show.id, since=mark
            )
            == []
        )
        session.get_one(Invoice, first).status = InvoiceStatus.PAID
        session.commit()
        changed = invoice_panel.changes_since(
            session, workspace_id=workspace_id, show_id=show.id, since=mark
        )
    assert [invoice.id for invoice in changed] == [first]


def test_csv_export_has_a_line_per_buyer_with_items_and_invoice(
    engine: Engine, workspace_id: int
) -> None:
    show = make_show(engine, workspace_id=workspace_id, buyers=3, unpriced=(3,))
    _invoice(engine, show, 1, InvoiceStatus.PAID)
    with Session(engine) as session:
        rows = invoice_panel.all_rows(session, workspace_id=workspace_id, show_id=show.id)
    parsed = list(csv.DictReader(io.StringIO(invoice_panel.export_csv(rows))))
    assert [line["handle"] for line in parsed] == ["b0000", "b0001", "b0002"]
    assert parsed[0]["items"] == "#1 Item 1 x2 @5.00; #2 Item 2 x1 @10.00; #3 Item 3 x1 @unpriced"
    assert parsed[0]["subtotal"] == "20.00" and parsed[0]["unpriced_items"] == "1"
    assert parsed[1]["invoice_status"] == "paid" and parsed[1]["invoice_amount"] == "12.34"
    assert parsed[2]["invoice_status"] == ""


def test_another_workspaces_show_is_not_found(engine: Engine, workspace_id: int) -> None:
    show = make_show(engine, workspace_id=workspace_id, buyers=1)
    with Session(engine) as session:
        other = Workspace(name="Other", slug="other", plan="pro")  # type: ignore[arg-type]
        session.add(other)
        session.commit()
        with pytest.raises(NotFound):
            invoice_panel.rollup(session, workspace_id=other.id, show_id=show.id)
        assert session.scalars(select(Invoice)).all() == []
