"""The show page's state, without a browser: what each invoice status lets the operator do, and
how the one-second poll tells news from the overlap it reads again; a typed price as understood
before saving, and the items table's rows."""

from __future__ import annotations

from backend.invoicing.panel import BuyerRow, InvoiceBrief, ItemLine, ItemRow
from backend.platform.money import MoneyFormat
from console.state.show.views import (
    InvoiceSnap,
    buyer_view,
    fresh,
    paid_message,
    payments,
    price_row,
    understand,
)
from models import InvoiceStatus, JobStatus


def _row(invoice: InvoiceBrief | None = None) -> BuyerRow:
    return BuyerRow(
        platform_user_id="fb_1",
        handle="maria_1",
        email=None,
        messenger_psid="7100",
        claims=2,
        subtotal_cents=4200,
        unpriced=1,
        invoice=invoice,
        items=[ItemLine(3, "Silk scarf", 2, 2100), ItemLine(6, "Wool beanie", 1, None)],
    )


def _invoice(
    status: InvoiceStatus,
    *,
    external_id: str | None = "in_1",
    error: str | None = None,
    channel: str | None = None,
    job: JobStatus | None = JobStatus.DONE,
    job_error: str | None = None,
) -> InvoiceBrief:
    return InvoiceBrief(
        id=7,
        status=status,
        attempt=1,
        external_id=external_id,
        url="https://sandbox.example/invoice/in_1" if external_id else None,
        amount_cents=4200,
        error=error,
        link_channel=channel,
        job_status=job,
        job_attempts=1,
        job_error=job_error,
    )


def _actions(view: object) -> set[str]:
    names = ("can_generate", "can_send", "can_void", "can_regenerate", "can_retry")
    return {name for name in names if getattr(view, name)}


def test_a_buyer_without_an_invoice_can_be_generated_and_their_items_are_flagged() -> None:
    view = buyer_view(_row(), "usd")
    assert _actions(view) == {"can_generate"}
    assert (view.status, view.status_label, view.contact) == ("", "Not invoiced", "Messenger")
    assert [(line.text, line.unpriced) for line in view.lines] == [
        ("#3 Silk scarf x2 · $21.00", False),
        ("#6 Wool beanie x1 · no price", True),
    ]
    assert view.subtotal == "$42.00"


def test_each_status_offers_only_what_the_services_accept() -> None:
    sent = buyer_view(_row(_invoice(InvoiceStatus.SENT, channel="manual")), "usd")
    assert _actions(sent) == {"can_send", "can_void"}
    assert sent.manual and sent.url and sent.status_label == "Sent"

    paid = buyer_view(_row(_invoice(InvoiceStatus.PAID, channel="email")), "usd")
    assert _actions(paid) == set()
    assert paid.url and paid.channel == "emailed by Stripe" and not paid.manual

    void = buyer_view(_row(_invoice(InvoiceStatus.VOID)), "usd")
    assert _actions(void) == {"can_regenerate"}

    failed = buyer_view(
        _row(_invoice(InvoiceStatus.ERROR, external_id=None, error="No such customer")), "usd"
    )
    assert _actions(failed) == {"can_retry"}
    assert failed.note == "No such customer" and failed.status_label == "Error"


def test_an_invoice_being_created_says_so_with_the_last_retry_reason() -> None:
    creating = buyer_view(
        _row(
            _invoice(
                InvoiceStatus.DRAFT,
                external_id=None,
                job=JobStatus.PENDING,
                job_error="Stripe is rate limiting",
            )
        ),
        "usd",
    )
    assert _actions(creating) == set()
    assert creating.note == "Creating in Stripe (retrying: Stripe is rate limiting)"


def _snap(status: str, updated: float, paid_at: float | None = None, id_: int = 1) -> InvoiceSnap:
    return InvoiceSnap(id_, "maria_1", status, 4250, "usd", updated, paid_at)


def test_the_poll_overlap_reports_each_change_once() -> None:
    first = [_snap("sent", 100.0), _snap("draft", 101.0, id_=2)]
    assert fresh(first, {}) == first
    seen = {c.id: c.signature for c in first}
    # The next poll looks back over the same seconds: only the row that changed again is news.
    second = [_snap("sent", 100.0), _snap("sent", 103.0, id_=2)]
    assert fresh(second, seen) == [second[1]]


def test_a_payment_while_the_page_is_open_is_announced_once() -> None:
    opened = 1_000.0
    paid_now = _snap("paid", 1_010.0, paid_at=1_009.0)
    paid_long_ago = _snap("paid", 1_011.0, paid_at=500.0, id_=2)  # another change to an old one
    assert payments([paid_now, paid_long_ago, _snap("sent", 1_012.0, id_=3)], set(), opened) == [
        paid_now
    ]
    assert payments([paid_now], {paid_now.id}, opened) == []
    assert paid_message(paid_now) == "@maria_1 paid $42.50"


def test_a_typed_price_is_shown_as_understood_before_saving_or_refused() -> None:
    us, de = MoneyFormat("en_US", "usd"), MoneyFormat("de_DE", "eur")
    assert understand("12.50", us) == ("$12.50", "")
    assert understand("12,50", de) == ("12,50\xa0€", "")
    assert understand("0", us) == ("$0.00: a free item?", "")
    assert understand("  ", us) == ("", "")
    understood, refused = understand("12,50", us)
    assert understood == "" and refused.startswith("“12,50” is ambiguous")


def test_the_items_table_keys_each_row_by_its_item() -> None:
    fmt = MoneyFormat("en_US", "usd")
    priced = price_row(ItemRow(17, 3, "Silk scarf", 2100, 3, 2), fmt)
    unpriced = price_row(ItemRow(18, 4, "Wool beanie", None, 0, 0), fmt)
    assert (priced.id, priced.number, priced.price, priced.priced) == ("17", "3", "$21.00", True)
    assert priced.claimed == "3 by 2 buyers"
    assert (unpriced.id, unpriced.price, unpriced.priced, unpriced.claimed) == (
        "18",
        "",
        False,
        "not claimed",
    )
