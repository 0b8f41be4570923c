# Longer than 500 lines: every read of the Invoices tab, sharing its show and invoice queries.
"""The invoice panel of a show, read side: the buyer rollup (claims grouped by buyer with their
current invoice), its filters and pages, the summary and the generation progress, CSV export.

One grouped query per page, whatever the show's size: the rollup of a show with 1,000 buyers and
20,000 claims is one aggregate over ``claims`` (indexed by show and buyer) plus the page's items.
The same query counts the matching buyers (a window) and joins each page row's invoice, job and
buyer by key after the page is cut, so neither grows with the outbox or the show
(bench/bench_rollup.py).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Subquery,
    and_,
    case,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.orm import Session, aliased

from backend.platform.errors import NotFound
from models import Buyer, Claim, Invoice, InvoiceStatus, JobStatus, OutboxJob, Show, ShowItem

PER_PAGE = 50
NO_INVOICE = "none"  # the status filter for buyers not invoiced yet


@dataclass(frozen=True, slots=True)
class ItemLine:
    number: int
    title: str
    quantity: int
    unit_price_cents: int | None

    @property
    def amount_cents(self) -> int:
        return self.quantity * (self.unit_price_cents or 0)


@dataclass(frozen=True, slots=True)
class InvoiceBrief:
    id: int
    status: InvoiceStatus
    attempt: int
    external_id: str | None
    url: str | None
    amount_cents: int
    error: str | None
    link_channel: str | None
    job_status: JobStatus | None
    job_attempts: int
    job_error: str | None

    @property
    def in_progress(self) -> bool:
        return self.job_status in (JobStatus.PENDING, JobStatus.RUNNING)


@dataclass(frozen=True, slots=True)
class BuyerRow:
    platform_user_id: str
    handle: str
    email: str | None
    messenger_psid: str | None
    claims: int
    subtotal_cents: int
    unpriced: int
    invoice: InvoiceBrief | None
    items: list[ItemLine] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RollupPage:
    rows: list[BuyerRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True, slots=True)
class Progress:
    """Invoices of the show's current generation, by where their job is."""

    queued: int
    done: int
    failed: int

    @property
    def total(self) -> int:
        return self.queued + self.done + self.failed

    @property
    def finished(self) -> bool:
        return self.queued == 0


@dataclass(frozen=True, slots=True)
class PanelSummary:
    show_id: int
    title: str
    currency: str
    buyers: int
    claims: int
    total_cents: int
    not_invoiced: int
    by_status: dict[str, int]
    progress: Progress
    unpriced_items: list[tuple[int, int, str]]  # (item id, number, title)


def show_for(session: Session, *, workspace_id: int, show_id: int) -> Show:
    show = session.get(Show, show_id)
    if show is None or show.workspace_id != workspace_id:
        raise NotFound("This show does not exist in this workspace; pick one from Shows.")
    return show


def invoice_for(session: Session, *, workspace_id: int, invoice_id: int) -> Invoice:
    invoice = session.get(Invoice, invoice_id)
    if invoice is None or invoice.workspace_id != workspace_id:
        raise NotFound("This invoice is not in this workspace; reload the show.")
    return invoice


def latest_attempts(*show_ids: int) -> Subquery:
    """Each buyer's latest invoice attempt in each of the shows: that attempt is the buyer's
    current invoice (a regenerate supersedes the voided invoice before it)."""
    return (
        select(
            Invoice.show_id,
            Invoice.buyer_platform_id,
            func.max(Invoice.attempt).label("attempt"),
        )
        .where(Invoice.show_id.in_(show_ids))
        .group_by(Invoice.show_id, Invoice.buyer_platform_id)
        .subquery()
    )


def is_current(invoice: Any, latest: Subquery) -> ColumnElement[bool]:
    """``invoice`` (the model or an alias of it) is its buyer's row of ``latest_attempts``."""
    return and_(
        invoice.show_id == latest.c.show_id,
        invoice.buyer_platform_id == latest.c.buyer_platform_id,
        invoice.attempt == latest.c.attempt,
    )


def job_key(invoice_id: int) -> str:
    """The idempotency key of the job that creates this invoice in Stripe."""
    return f"invoice:{invoice_id}"


def _matching(show: Show, status: str, search: str) -> tuple[Select[Any], Any]:
    """The buyers of the show that pass the filters: their totals, their current invoice's id
    and how many buyers match in all (a window count, so a page needs no second pass)."""
    totals = (
        select(
            Claim.platform_user_id.label("pid"),
            func.max(Claim.buyer_handle).label("handle"),
            func.count(Claim.id).label("claims"),
            func.coalesce(
                func.sum(Claim.quantity * func.coalesce(ShowItem.price_cents, 0)), 0
            ).label("subtotal"),
            func.sum(case((ShowItem.price_cents.is_(None), 1), else_=0)).label("unpriced"),
        )
        .join(ShowItem, ShowItem.id == Claim.item_id)
        .where(Claim.show_id == show.id)
        .group_by(Claim.platform_user_id)
        .subquery()
    )
    latest = latest_attempts(show.id)
    current = aliased(Invoice)
    stmt = (
        select(
            totals.c.pid,
            totals.c.handle,
            totals.c.claims,
            totals.c.subtotal,
            totals.c.unpriced,
            current.id.label("invoice_id"),
            func.count().over().label("matching"),
        )
        .outerjoin(latest, latest.c.buyer_platform_id == totals.c.pid)
        .outerjoin(current, is_current(current, latest))
    )
    if status == NO_INVOICE:
        stmt = stmt.where(current.id.is_(None))
    elif status:
        stmt = stmt.where(current.status == InvoiceStatus(status))
    if search.strip():
        stmt = stmt.where(totals.c.handle.ilike(f"%{search.strip().lstrip('@')}%"))
    return stmt, totals


def _rollup_query(
    show: Show, status: str, search: str, *, limit: int | None = None, offset: int = 0
) -> Select[Any]:
    """The matching buyers by handle (one page of them given ``limit``), each with the current
    invoice, its job and the buyer's contact details. Those are joined to the page's rows only:
    looked up by key for a page of 50, not joined for the whole show and then cut."""
    matching, totals = _matching(show, status, search)
    ordered = matching.order_by(totals.c.handle, totals.c.pid)
    if limit is not None:
        ordered = ordered.limit(limit).offset(offset)
    page = ordered.subquery()
    invoice = aliased(Invoice)
    job = aliased(OutboxJob)
    return (
        select(
            page.c.pid,
            page.c.handle,
            page.c.claims,
            page.c.subtotal,
            page.c.unpriced,
            Buyer.email,
            Buyer.messenger_psid,
            invoice,
            job.status,
            job.attempts,
            job.last_error,
            page.c.matching,
        )
        .outerjoin(invoice, invoice.id == page.c.invoice_id)
        .outerjoin(
            job, job.idempotency_key == literal("invoice:") + cast(page.c.invoice_id, String)
        )
        .outerjoin(
            Buyer,
            and_(Buyer.workspace_id == show.workspace_id, Buyer.platform_user_id == page.c.pid),
        )
        .order_by(page.c.handle, page.c.pid)
    )


def rollup(
    session: Session,
    *,
    workspace_id: int,
    show_id: int,
    status: str = "",
    search: str = "",
    page: int = 1,
    per_page: int = PER_PAGE,
) -> RollupPage:
    """One page of the show's buyers, by handle, with their items and current invoice."""
    show = show_for(session, workspace_id=workspace_id, show_id=show_id)
    page = max(1, page)
    rows = session.execute(
        _rollup_query(show, status, search, limit=per_page, offset=(page - 1) * per_page)
    ).all()
    if rows:
        total = int(rows[0][-1])
    elif page == 1:
        total = 0
    else:  # past the last page: count without the page's rows to read it from
        matching, _totals = _matching(show, status, search)
        total = int(session.scalar(select(func.count()).select_from(matching.subquery())) or 0)
    items = _items_of(session, show.id, [row[0] for row in rows])
    return RollupPage(
        rows=[_buyer_row(row, items.get(row[0], [])) for row in rows],
        total=total,
        page=page,
        per_page=per_page,
    )


def all_rows(
    session: Session, *, workspace_id: int, show_id: int, status: str = "", search: str = ""
) -> list[BuyerRow]:
    """Every buyer matching the filters (for the CSV export)."""
    show = show_for(session, workspace_id=workspace_id, show_id=show_id)
    rows = session.execute(_rollup_query(show, status, search)).all()
    items = _items_of(session, show.id, None)
    return [_buyer_row(row, items.get(row[0], [])) for row in rows]


def _buyer_row(row: Any, items: list[ItemLine]) -> BuyerRow:
    pid, handle, claims, subtotal, unpriced, email, psid, invoice, j_status, j_att, j_err = row[:11]
    brief = None
    if invoice is not None:
        brief = InvoiceBrief(
            id=invoice.id,
            status=invoice.status,
            attempt=invoice.attempt,
            external_id=invoice.external_id,
            url=invoice.external_url,
            amount_cents=invoice.amount_cents,
            error=invoice.error_message,
            link_channel=invoice.link_channel,
            job_status=j_status,
            job_attempts=int(j_att or 0),
            job_error=j_err,
        )
    return BuyerRow(
        platform_user_id=pid,
        handle=handle,
        email=email,
        messenger_psid=psid,
        claims=int(claims),
        subtotal_cents=int(subtotal or 0),
        unpriced=int(unpriced or 0),
        invoice=brief,
        items=items,
    )


def _items_of(
    session: Session, show_id: int, buyers: list[str] | None
) -> dict[str, list[ItemLine]]:
    stmt = (
        select(
            Claim.platform_user_id,
            ShowItem.number,
            ShowItem.title,
            func.sum(Claim.quantity),
            ShowItem.price_cents,
        )
        .join(ShowItem, ShowItem.id == Claim.item_id)
        .where(Claim.show_id == show_id)
        .group_by(Claim.platform_user_id, ShowItem.id, ShowItem.number, ShowItem.title)
        .order_by(Claim.platform_user_id, ShowItem.number)
    )
    if buyers is not None:
        if not buyers:
            return {}
        stmt = stmt.where(Claim.platform_user_id.in_(buyers))
    found: dict[str, list[ItemLine]] = {}
    for pid, number, title, quantity, price in session.execute(stmt):
        found.setdefault(pid, []).append(ItemLine(number, title, int(quantity), price))
    return found


def buyer_lines(session: Session, *, show_id: int, platform_user_id: str) -> list[ItemLine]:
    """What one buyer claimed in the show, item by item (the invoice's lines)."""
    return _items_of(session, show_id, [platform_user_id]).get(platform_user_id, [])


def summary(session: Session, *, workspace_id: int, show_id: int) -> PanelSummary:
    show = show_for(session, workspace_id=workspace_id, show_id=show_id)
    buyers, claims, total = session.execute(
        select(
            func.count(func.distinct(Claim.platform_user_id)),
            func.count(Claim.id),
            func.coalesce(func.sum(Claim.quantity * func.coalesce(ShowItem.price_cents, 0)), 0),
        )
        .join(ShowItem, ShowItem.id == Claim.item_id)
        .where(Claim.show_id == show.id)
    ).one()
    latest = latest_attempts(show.id)
    current = (
        select(Invoice.status, Invoice.external_id)
        .join(latest, is_current(Invoice, latest))
        .subquery()
    )
    by_status: dict[str, int] = {}
    queued = done = failed = 0
    for status, has_external, count in session.execute(
        select(current.c.status, current.c.external_id.is_not(None), func.count()).group_by(
            current.c.status, current.c.external_id.is_not(None)
        )
    ):
        key = InvoiceStatus(status).value
        by_status[key] = by_status.get(key, 0) + int(count)
        if status == InvoiceStatus.ERROR:
            failed += int(count)
        elif has_external:
            done += int(count)
        elif status == InvoiceStatus.DRAFT:
            queued += int(count)
        else:
            done += int(count)
    unpriced = [
        (item.id, item.number, item.title)
        for item in session.scalars(
            select(ShowItem)
            .where(
                ShowItem.show_id == show.id,
                ShowItem.price_cents.is_(None),
                ShowItem.id.in_(select(Claim.item_id).where(Claim.show_id == show.id)),
            )
            .order_by(ShowItem.number)
        )
    ]
    invoiced = sum(by_status.values())
    return PanelSummary(
        show_id=show.id,
        title=show.title,
        currency=show.currency,
        buyers=int(buyers),
        claims=int(claims),
        total_cents=int(total),
        not_invoiced=int(buyers) - invoiced,
        by_status=by_status,
        progress=Progress(queued=queued, done=done, failed=failed),
        unpriced_items=unpriced,
    )


@dataclass(frozen=True, slots=True)
class ItemRow:
    id: int
    number: int
    title: str
    price_cents: int | None
    claimed: int  # units claimed, over all buyers
    buyers: int


@dataclass(frozen=True, slots=True)
class ItemPage:
    rows: list[ItemRow]
    total: int
    unpriced: int  # items claimed in the show and not priced yet, on every page
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def items(
    session: Session, *, workspace_id: int, show_id: int, page: int = 1, per_page: int = PER_PAGE
) -> ItemPage:
    """One page of the show's items by number, each with its price and how much was claimed
    (the price editor of the Invoices tab)."""
    show = show_for(session, workspace_id=workspace_id, show_id=show_id)
    total = int(
        session.scalar(
            select(func.count()).select_from(ShowItem).where(ShowItem.show_id == show.id)
        )
        or 0
    )
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    claimed = (
        select(
            Claim.item_id,
            func.sum(Claim.quantity).label("units"),
            func.count(func.distinct(Claim.platform_user_id)).label("buyers"),
        )
        .where(Claim.show_id == show.id)
        .group_by(Claim.item_id)
        .subquery()
    )
    rows = [
        ItemRow(item.id, item.number, item.title, item.price_cents, int(units or 0), int(n or 0))
        for item, units, n in session.execute(
            select(ShowItem, claimed.c.units, claimed.c.buyers)
            .outerjoin(claimed, claimed.c.item_id == ShowItem.id)
            .where(ShowItem.show_id == show.id)
            .order_by(ShowItem.number)
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    ]
    unpriced = int(
        session.scalar(
            select(func.count())
            .select_from(ShowItem)
            .where(
                ShowItem.show_id == show.id,
                ShowItem.price_cents.is_(None),
                ShowItem.id.in_(select(Claim.item_id).where(Claim.show_id == show.id)),
            )
        )
        or 0
    )
    return ItemPage(rows, total, unpriced, page, per_page)


def changes_since(
    session: Session, *, workspace_id: int, show_id: int, since: dt.datetime
) -> list[Invoice]:
    """Invoices of the show changed after ``since`` (the open panel's poll: cheap, indexed)."""
    return list(
        session.scalars(
            select(Invoice)
            .where(
                Invoice.workspace_id == workspace_id,
                Invoice.show_id == show_id,
                Invoice.updated_at > since,
            )
            .order_by(Invoice.updated_at)
        )
    )


CSV_COLUMNS = (
    "handle",
    "platform_user_id",
    "email",
    "items",
    "claims",
    "subtotal",
    "unpriced_items",
    "invoice_status",
    "invoice_amount",
    "invoice_url",
)


def _money(cents: int) -> str:
    return f"{cents / 100:.2f}"


def export_csv(rows: Iterable[BuyerRow]) -> str:
    """The rollup as CSV: one line per buyer, items as "#number title xquantity @price"."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        items = "; ".join(
            f"#{i.number} {i.title} x{i.quantity} @"
            + (_money(i.unit_price_cents) if i.unit_price_cents is not None else "unpriced")
            for i in row.items
        )
        invoice = row.invoice
        writer.writerow(
            [
                row.handle,
                row.platform_user_id,
                row.email or "",
                items,
                row.claims,
                _money(row.subtotal_cents),
                row.unpriced,
                invoice.status.value if invoice else "",
                _money(invoice.amount_cents) if invoice else "",
                (invoice.url or "") if invoice else "",
            ]
        )
    return out.getvalue()
