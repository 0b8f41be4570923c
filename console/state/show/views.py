"""What a show's page shows, read from the services into plain view models: the buyer rollup's
rows, the figures, the invoices changed since the last poll, reconciliation findings and a
claims file's preview. No Reflex state here (the states are the other modules of this package);
tests/console/test_show.py covers it."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from backend.accounts import money_settings
from backend.connections import provider_status
from backend.invoicing import checkout_links, reconciliation
from backend.invoicing import panel as invoice_panel
from backend.platform.errors import InvalidInput
from backend.platform.money import MoneyFormat
from backend.shows import claims_import
from console.state.formatting import money, when
from models import Invoice, InvoiceStatus

# The moments the poll looks back over (see InvoicesState.poll): a row's updated_at is set before
# its transaction commits.
OVERLAP_SECONDS = 5.0
STATUS_FILTERS: list[tuple[str, str]] = [
    ("all", "All"),
    (invoice_panel.NO_INVOICE, "Not invoiced"),
    ("draft", "Draft"),
    ("sent", "Sent"),
    ("paid", "Paid"),
    ("void", "Void"),
    ("error", "Error"),
]
_STATUS_LABELS = {s.value: s.value.title() for s in InvoiceStatus}
_CHANNELS = {"email": "emailed by Stripe", "messenger": "sent on Messenger", "manual": ""}


@dataclass
class ItemView:
    # One line of text per item ("#12 Denim jacket x2 · $24.00"): a page of 50 buyers has about
    # a thousand of them, and one element each keeps the first render quick.
    text: str
    unpriced: bool


@dataclass
class BuyerView:
    """One row of the rollup, as the page shows it (strings and flags only)."""

    pid: str
    handle: str
    contact: str
    claims: int
    subtotal: str
    unpriced: int
    lines: list[ItemView] = field(default_factory=list)
    invoice_id: str = ""
    status: str = ""  # "" before the buyer has an invoice
    status_label: str = "Not invoiced"
    note: str = ""  # the error, or why the invoice is not in Stripe yet
    url: str = ""
    channel: str = ""
    manual: bool = False
    can_generate: bool = False
    can_send: bool = False
    can_void: bool = False
    can_regenerate: bool = False
    can_retry: bool = False


def buyer_view(row: invoice_panel.BuyerRow, currency: str) -> BuyerView:
    view = BuyerView(
        pid=row.platform_user_id,
        handle=row.handle,
        contact="email" if row.email else ("Messenger" if row.messenger_psid else ""),
        claims=row.claims,
        subtotal=money(row.subtotal_cents, currency),
        unpriced=row.unpriced,
        lines=[
            ItemView(
                text=f"#{i.number} {i.title} x{i.quantity} · "
                + (
                    "no price"
                    if i.unit_price_cents is None
                    else money(i.unit_price_cents, currency)
                ),
                unpriced=i.unit_price_cents is None,
            )
            for i in row.items
        ],
    )
    invoice = row.invoice
    if invoice is None:
        view.can_generate = True
        return view
    status = invoice.status.value
    view.invoice_id = str(invoice.id)
    view.status, view.status_label = status, _STATUS_LABELS[status]
    view.url = invoice.url or ""
    view.manual = invoice.link_channel == checkout_links.MANUAL
    view.channel = _CHANNELS.get(invoice.link_channel or "", "")
    if invoice.error:
        view.note = invoice.error
    elif invoice.in_progress and invoice.external_id is None:
        view.note = (
            f"Creating in Stripe (retrying: {invoice.job_error[:200]})"
            if invoice.job_error
            else "Creating in Stripe…"
        )
    open_link = bool(view.url) and invoice.status in (InvoiceStatus.SENT, InvoiceStatus.ERROR)
    view.can_send = open_link
    view.can_void = invoice.external_id is not None and invoice.status in (
        InvoiceStatus.DRAFT,
        InvoiceStatus.SENT,
        InvoiceStatus.ERROR,
    )
    view.can_regenerate = invoice.status is InvoiceStatus.VOID
    view.can_retry = invoice.status is InvoiceStatus.ERROR and invoice.external_id is None
    return view


@dataclass
class PriceRow:
    """One item of the show's items table (the price editor). Its input is keyed by ``id``."""

    id: str
    number: str
    title: str
    price: str  # "$12.50", or "" while unpriced
    priced: bool
    claimed: str  # "3 by 2 buyers"


def price_row(item: invoice_panel.ItemRow, fmt: MoneyFormat) -> PriceRow:
    return PriceRow(
        id=str(item.id),
        number=str(item.number),
        title=item.title,
        price="" if item.price_cents is None else fmt.format(item.price_cents),
        priced=item.price_cents is not None,
        claimed=(
            f"{item.claimed} by {item.buyers} buyer{'s' if item.buyers != 1 else ''}"
            if item.claimed
            else "not claimed"
        ),
    )


def understand(text: str, fmt: MoneyFormat) -> tuple[str, str]:
    """(what the typed price was understood as, or why it cannot be): shown before saving."""
    if not text.strip():
        return "", ""
    try:
        minor = fmt.parse(text)
    except InvalidInput as exc:
        return "", str(exc)
    return (f"{fmt.format(minor)}: a free item?" if minor == 0 else fmt.format(minor)), ""


# -- what the poll sees ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvoiceSnap:
    """An invoice as the poll saw it: enough to tell a change and to announce a payment."""

    id: int
    handle: str
    status: str
    amount_cents: int
    currency: str
    updated: float
    paid_at: float | None

    @property
    def signature(self) -> str:
        return f"{self.status}@{self.updated}"


def snap(invoice: Invoice) -> InvoiceSnap:
    return InvoiceSnap(
        id=invoice.id,
        handle=invoice.buyer_handle,
        status=invoice.status.value,
        amount_cents=invoice.amount_cents,
        currency=invoice.currency,
        updated=invoice.updated_at.timestamp(),
        paid_at=invoice.paid_at.timestamp() if invoice.paid_at else None,
    )


def fresh(changed: Iterable[InvoiceSnap], seen: dict[int, str]) -> list[InvoiceSnap]:
    """What changed since the last poll (the overlap returns some rows again)."""
    return [c for c in changed if seen.get(c.id) != c.signature]


def payments(news: Iterable[InvoiceSnap], announced: set[int], opened: float) -> list[InvoiceSnap]:
    """Invoices that turned Paid while the page was open, each announced once."""
    return [
        c
        for c in news
        if c.status == InvoiceStatus.PAID.value
        and c.id not in announced
        and (c.paid_at is None or c.paid_at >= opened - OVERLAP_SECONDS)
    ]


def paid_message(paid: InvoiceSnap) -> str:
    return f"@{paid.handle} paid {money(paid.amount_cents, paid.currency)}"


# -- reading the panel ----------------------------------------------------------------------


@dataclass
class Panel:
    title: str
    show_status: str
    started: str
    currency: str
    locale: str
    buyers: int
    claims: int
    total: str
    not_invoiced: int
    counts: dict[str, int]
    queued: int
    done: int
    failed: int
    unpriced: int  # claimed items without a price
    items: list[PriceRow]
    items_page: int
    items_pages: int
    rows: list[BuyerView]
    matching: int
    page: int
    pages: int
    # provider_status's state of Stripe (ready, unavailable, refused, not_connected), in words.
    stripe_state: str
    stripe_message: str


@dataclass(frozen=True)
class View:
    """Which rows the operator is looking at."""

    show_id: int
    status: str
    search: str
    page: int
    items_page: int = 1


def read_panel(session: Session, workspace_id: int, view: View) -> Panel:
    show = invoice_panel.show_for(session, workspace_id=workspace_id, show_id=view.show_id)
    summary = invoice_panel.summary(session, workspace_id=workspace_id, show_id=view.show_id)
    status = "" if view.status == "all" else view.status
    page = functools.partial(
        invoice_panel.rollup,
        session,
        workspace_id=workspace_id,
        show_id=view.show_id,
        status=status,
        search=view.search,
    )
    rollup = page(page=view.page)
    if rollup.page > rollup.pages:  # the filter shrank under the page: show the last one
        rollup = page(page=rollup.pages)
    fmt = money_settings.for_show(session, workspace_id=workspace_id, show=show)
    items = invoice_panel.items(
        session, workspace_id=workspace_id, show_id=view.show_id, page=view.items_page
    )
    stripe = provider_status.state(session, workspace_id=workspace_id, provider="stripe")
    return Panel(
        title=show.title,
        show_status=show.status.value,
        started=when(show.started_at),
        currency=summary.currency,
        locale=fmt.locale,
        buyers=summary.buyers,
        claims=summary.claims,
        total=fmt.format(summary.total_cents),
        not_invoiced=summary.not_invoiced,
        counts={s.value: summary.by_status.get(s.value, 0) for s in InvoiceStatus},
        queued=summary.progress.queued,
        done=summary.progress.done,
        failed=summary.progress.failed,
        unpriced=items.unpriced,
        items=[price_row(i, fmt) for i in items.rows],
        items_page=items.page,
        items_pages=items.pages,
        rows=[buyer_view(r, summary.currency) for r in rollup.rows],
        matching=rollup.total,
        page=rollup.page,
        pages=rollup.pages,
        stripe_state=stripe.state,
        stripe_message=stripe.message,
    )


def changed_since(
    session: Session, workspace_id: int, show_id: int, since: float
) -> list[InvoiceSnap]:
    moment = dt.datetime.fromtimestamp(since, dt.UTC)
    return [
        snap(i)
        for i in invoice_panel.changes_since(
            session, workspace_id=workspace_id, show_id=show_id, since=moment
        )
    ]


def finding_row(finding: reconciliation.Finding) -> dict[str, str]:
    return {
        "id": str(finding.id),
        "field": finding.field,
        "summary": finding.summary,
        "new": "yes" if finding.new else "",
        "fixable": "yes" if finding.fixable else "",
    }


def read_findings(session: Session, workspace_id: int, show_id: int) -> list[dict[str, str]]:
    return [
        finding_row(f)
        for f in reconciliation.open_findings(session, workspace_id=workspace_id, show_id=show_id)
    ]


@dataclass
class ImportView:
    """A claims file's preview, as the Claims tab shows it."""

    summary: str
    errors: list[str]
    notes: list[str]
    ready: bool


def import_view(found: claims_import.ImportPreview) -> ImportView:
    if found.errors:
        n = found.bad_lines
        summary = (
            f"{n} row{' has' if n == 1 else 's have'} problems: fix {'it' if n == 1 else 'them'}"
            " in the file and choose it again. Nothing is imported until every row is right."
        )
    elif found.to_import == 0:
        summary = "Every row of this file is already a claim in this show: nothing to import."
    else:
        summary = (
            f"{found.to_import} claim{'s' if found.to_import != 1 else ''} to import: "
            f"{found.new_items} new item{'s' if found.new_items != 1 else ''}, "
            f"{found.new_buyers} new buyer{'s' if found.new_buyers != 1 else ''}."
        )
    return ImportView(
        summary=summary,
        errors=[str(e) for e in found.errors[:200]]
        + ([f"… and {len(found.errors) - 200} more"] if len(found.errors) > 200 else []),
        notes=found.notes,
        ready=found.ok and found.to_import > 0,
    )


@dataclass
class Polled:
    seen: dict[int, str]
    news: list[InvoiceSnap]
    panel: Panel | None
