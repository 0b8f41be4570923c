"""Making and voiding invoices in Stripe: the work of the outbox jobs that ``service`` enqueues
(``stripe.create_invoice``, ``stripe.void_invoice``; declared in invoicing/jobs.py), and what
an invoice shows when its job gives up.

Each job reads what it needs, ends its transaction before calling Stripe (``call_provider``),
and writes the answer in a new one; every call carries a key derived from the job, so a retry
or a crashed worker's rerun reaches the same Stripe objects.

A job that died after Stripe made an invoice but before we recorded its id is rerun by a retry
or, days later, by an operator's replay: the job looks for the invoice by our row's id in its
metadata before making one, on every attempt (docs/security/once.md).

Tested in tests/invoicing/test_stripe_invoices.py and tests/invoicing/test_service.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.connections import providers
from backend.integrations.errors import ProviderRejected
from backend.integrations.stripe import StripeAdapter, StripeInvoice
from backend.invoicing import checkout_links
from backend.invoicing import panel as invoice_panel
from backend.invoicing import service as invoicing
from backend.platform import outbox
from models import Buyer, Integration, Invoice, InvoiceStatus, Show, utcnow


@dataclass(frozen=True)
class _Plan:
    """What the job read before calling Stripe (the transaction ends before the calls)."""

    invoice_id: int
    show_id: int
    workspace_id: int
    buyer_id: int | None
    customer_id: str | None
    platform_user_id: str
    handle: str
    email: str | None
    currency: str
    memo: str
    days_until_due: int
    lines: list[dict[str, Any]]
    amount_cents: int
    snapshot: list[dict[str, Any]]
    # Unix seconds before which Stripe cannot hold this row's invoice (the row came first).
    created_since: int


# Our clock and Stripe's may disagree by this much.
_CLOCK_SKEW_SECONDS = 600


def _plan(session: Session, invoice: Invoice, integration: Integration) -> _Plan:
    assert invoice.show_id is not None
    show = session.get_one(Show, invoice.show_id)
    buyer = session.scalars(
        select(Buyer).where(
            Buyer.workspace_id == invoice.workspace_id,
            Buyer.platform_user_id == invoice.buyer_platform_id,
        )
    ).first()
    settings = integration.settings or {}
    template = str(settings.get("invoice_memo_template") or "Your claims from {show}")
    try:
        memo = template.format(show=show.title, handle=invoice.buyer_handle)
    except (KeyError, IndexError, ValueError):
        memo = f"Your claims from {show.title}"  # a broken template must not block invoicing
    items = invoice_panel.buyer_lines(
        session, show_id=show.id, platform_user_id=invoice.buyer_platform_id
    )
    lines = [
        {
            # The line's total. Stripe refuses `amount` with `quantity` ("You may only specify
            # one of these parameters: amount, quantity"), and a per-unit price would need an
            # inline Price and Product per line, so the quantity is said once, in the text.
            "amount": item.amount_cents,
            # What the buyer reads on Stripe's invoice: the item's name, the number it was
            # called by in the show and, when they claimed more than one, how many.
            "description": _line_description(item),
            "metadata": {"item_number": str(item.number)},
        }
        for item in items
    ]
    snapshot = [
        {
            "number": i.number,
            "title": i.title,
            "quantity": i.quantity,
            "unit_price_cents": i.unit_price_cents,
            "amount_cents": i.amount_cents,
        }
        for i in items
    ]
    return _Plan(
        invoice_id=invoice.id,
        show_id=show.id,
        workspace_id=invoice.workspace_id,
        buyer_id=buyer.id if buyer else None,
        customer_id=buyer.stripe_customer_id if buyer else None,
        platform_user_id=invoice.buyer_platform_id,
        handle=invoice.buyer_handle,
        email=buyer.email if buyer else None,
        currency=show.currency or str(settings.get("default_currency") or "usd"),
        memo=memo,
        days_until_due=int(settings.get("days_until_due") or 7),
        lines=lines,
        amount_cents=sum(i.amount_cents for i in items),
        snapshot=snapshot,
        # (created_at is timezone-aware on every backend: models.base.UTCDateTime.)
        created_since=int(invoice.created_at.timestamp()) - _CLOCK_SKEW_SECONDS,
    )


def _create_in_stripe(
    stripe: StripeAdapter, plan: _Plan, job: outbox.JobContext
) -> tuple[str, StripeInvoice, bool]:
    """(customer id, the finalized invoice, whether Stripe emailed it). Every call keyed."""
    customer = plan.customer_id or stripe.ensure_customer(
        platform_user_id=plan.platform_user_id,
        email=plan.email,
        name=plan.handle,
        idempotency_key=f"stripe-customer:{plan.workspace_id}:{plan.platform_user_id}",
    )
    # Whatever the attempt number (a replay starts counting again): an earlier try may have
    # made the invoice and died before we recorded it, and Stripe forgets the create's key after
    # 24 hours, so a late rerun trusting the key alone would bill the buyer twice.
    existing = stripe.find_invoice(
        key="hub_invoice_id",
        value=str(plan.invoice_id),
        customer=customer,
        created_since=plan.created_since,
    )
    invoice = existing or stripe.create_invoice(
        customer=customer,
        currency=plan.currency,
        memo=plan.memo,
        days_until_due=plan.days_until_due,
        metadata={
            "hub_invoice_id": str(plan.invoice_id),
            "hub_show_id": str(plan.show_id),
            "hub_workspace_id": str(plan.workspace_id),
            "platform_user_id": plan.platform_user_id,
        },
        idempotency_key=job.provider_key("create"),
    )
    if invoice.status == "draft":
        if existing is None or existing.amount_due == 0:
            invoice = stripe.add_invoice_lines(
                invoice.id, plan.lines, idempotency_key=job.provider_key("lines")
            )
        invoice = stripe.finalize_invoice(invoice.id, idempotency_key=job.provider_key("finalize"))
    emailed = False
    if plan.email and invoice.status == "open":
        invoice = stripe.send_invoice(invoice.id, idempotency_key=job.provider_key("send"))
        emailed = True
    return customer, invoice, emailed


def create_invoice(session: Session, job: outbox.JobContext) -> None:
    invoice = session.get(Invoice, job.payload["invoice_id"])
    if invoice is None or invoice.external_id is not None:
        return  # deleted with its show, or already made by an earlier run
    integration = providers.connected_integration(
        session, workspace_id=invoice.workspace_id, provider="stripe"
    )
    plan = _plan(session, invoice, integration)
    if plan.amount_cents == 0:
        # Stripe marks a zero invoice paid on finalizing: nothing the buyer could pay.
        raise outbox.PermanentFailure(
            f"Nothing to charge @{plan.handle}: every item they claimed is unpriced. "
            "Set the prices, then Retry."
        )
    stripe = providers.stripe_for(session, workspace_id=invoice.workspace_id)
    customer, made, emailed = job.call_provider(lambda: _create_in_stripe(stripe, plan, job))

    invoice = session.get_one(Invoice, plan.invoice_id)
    if plan.buyer_id is not None:
        buyer = session.get_one(Buyer, plan.buyer_id)
        buyer.stripe_customer_id = buyer.stripe_customer_id or customer
    invoice.external_id = made.id
    invoice.external_url = made.hosted_invoice_url
    invoice.amount_cents = made.amount_due or plan.amount_cents
    invoice.line_items = plan.snapshot
    invoicing.raise_status(invoice, invoicing.STRIPE_STATUS.get(made.status, InvoiceStatus.SENT))
    invoice.sent_at = invoice.sent_at or utcnow()
    if emailed:
        invoice.link_channel, invoice.link_sent_at = "email", utcnow()
    checkout_links.after_creation(session, invoice, emailed=emailed)


def mark_failed(session: Session, payload: dict[str, Any], message: str) -> None:
    """The invoice job gave up: the invoice shows Error with Stripe's words."""
    invoice = session.get(Invoice, payload.get("invoice_id"))
    if invoice is not None and invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.SENT):
        invoice.status = InvoiceStatus.ERROR
        invoice.error_message = message[:1000]


def void_invoice(session: Session, job: outbox.JobContext) -> None:
    invoice = session.get_one(Invoice, job.payload["invoice_id"])
    if invoice.status is InvoiceStatus.PAID:
        return  # paid meanwhile: a paid invoice is never voided, nor regenerated
    if invoice.status is not InvoiceStatus.VOID and invoice.external_id is not None:
        external_id = invoice.external_id
        stripe = providers.stripe_for(session, workspace_id=invoice.workspace_id)
        voided = job.call_provider(
            lambda: _void_in_stripe(stripe, external_id, idempotency_key=job.provider_key())
        )
        invoice = session.get_one(Invoice, job.payload["invoice_id"])
        invoicing.raise_status(
            invoice, invoicing.STRIPE_STATUS.get(voided.status, InvoiceStatus.VOID)
        )
    if job.payload.get("regenerate") and invoice.status is InvoiceStatus.VOID:
        # A price changed after invoicing (regenerate_for_item): the buyer's next invoice,
        # made at the new price. Once only: the next attempt is unique.
        invoicing.next_attempt(session, invoice)


def _void_in_stripe(
    stripe: StripeAdapter, invoice_id: str, *, idempotency_key: str
) -> StripeInvoice:
    """Void once: an earlier try that voided it and died before we recorded so leaves Stripe
    refusing a second void ("only open invoices") once the key is forgotten (24 hours). That
    refusal is not a failure when Stripe's invoice is void already."""
    try:
        return stripe.void_invoice(invoice_id, idempotency_key=idempotency_key)
    except ProviderRejected:
        theirs = stripe.retrieve_invoice(invoice_id)
        if theirs.status == "void":
            return theirs
        raise


def _line_description(item: invoice_panel.ItemLine) -> str:
    """ "Cashmere sweater (lot 10) × 2": the quantity once, the lot the show called it by."""
    lot = f"lot {item.number}" + (
        "" if item.unit_price_cents is not None else ", price to be confirmed"
    )
    times = f" × {item.quantity}" if item.quantity > 1 else ""
    return f"{item.title} ({lot}){times}"
