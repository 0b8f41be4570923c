"""The invoice panel of a show, write side: prices, "Generate", void and regenerate. The outbox
jobs that do them in Stripe are in ``stripe_invoices`` (declared in invoicing/jobs.py).

Duplicates are impossible by construction: an invoice row is inserted once per (show, buyer,
attempt) — a unique constraint, with ON CONFLICT DO NOTHING, so concurrent clicks meet in the
database — and only the transaction that inserted the row enqueues its job. The job's Stripe
calls carry keys derived from the row's id, so a retry or a crashed worker's rerun reaches the
same Stripe objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.accounts import money_settings
from backend.connections import providers
from backend.db import conflict_insert
from backend.integrations.stripe import StripeInvoice
from backend.invoicing import live_priority
from backend.invoicing import panel as invoice_panel
from backend.platform import audit, outbox, outbox_operators, turns
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, NotFound
from models import (
    Claim,
    Integration,
    Invoice,
    InvoiceStatus,
    OutboxJob,
    Show,
    ShowItem,
    utcnow,
)

CREATE_KIND = "stripe.create_invoice"
VOID_KIND = "stripe.void_invoice"
STRIPE_STATUS = {
    "draft": InvoiceStatus.DRAFT,
    "open": InvoiceStatus.SENT,
    "paid": InvoiceStatus.PAID,
    "void": InvoiceStatus.VOID,
    "uncollectible": InvoiceStatus.VOID,
}
# Highest wins: an invoice only moves up (draft < sent < paid/void), whatever order news comes in.
RANK = {
    InvoiceStatus.DRAFT: 0,
    InvoiceStatus.ERROR: 0,
    InvoiceStatus.SENT: 1,
    InvoiceStatus.PAID: 2,
    InvoiceStatus.VOID: 2,
}


def raise_status(invoice: Invoice, status: InvoiceStatus) -> bool:
    """Move the invoice up its ladder; False (and nothing changes) for a stale, lower status."""
    if RANK[status] > RANK[invoice.status] or (
        invoice.status is InvoiceStatus.ERROR and status is not InvoiceStatus.ERROR
    ):
        invoice.status = status
        invoice.error_message = None
        return True
    return False


# -- prices ---------------------------------------------------------------------------------


class FreeItemUnconfirmed(InvalidInput):
    """A price of 0 was typed: the operator confirms the item is free (``free=True``)."""


@dataclass(frozen=True, slots=True)
class RepriceImpact:
    """The invoices made with an item's previous price: those that can be regenerated at the
    new one (voided in Stripe, then made again), and paid ones, which never are."""

    regenerate: list[int]  # invoice ids
    handles: list[str]  # their buyers
    paid: list[str]  # buyers who paid the old price

    @property
    def any(self) -> bool:
        return bool(self.regenerate or self.paid)


@dataclass(frozen=True, slots=True)
class PriceChange:
    item_id: int
    number: int
    title: str
    previous_cents: int | None
    price_cents: int
    price: str  # as the workspace writes it: "$12.50"
    impact: RepriceImpact


def _item(session: Session, actor: Actor, item_id: int) -> ShowItem:
    item = session.get(ShowItem, item_id)
    if item is None or item.workspace_id != actor.workspace_id:
        raise NotFound("This item is not in this workspace any more; reload the show.")
    return item


def set_item_price(
    session: Session, *, actor: Actor, item_id: int, price: str, free: bool = False
) -> PriceChange:
    """Price an item from what the operator typed, read in the workspace's locale and the
    show's currency ("12.50", "$12.50"; "12,50" in de_DE). 0 needs ``free=True``: a price
    left at 0 by a slip would invoice the item for nothing."""
    actor.require_change("set prices")
    item = _item(session, actor, item_id)
    show = session.get_one(Show, item.show_id)
    fmt = money_settings.for_show(session, workspace_id=actor.workspace_id, show=show)
    cents = fmt.parse(price)
    if cents == 0 and not free:
        raise FreeItemUnconfirmed(
            f"0 makes #{item.number} {item.title} free: confirm that it is a free item, or "
            f"type its price.",
            field="price",
        )
    previous = item.price_cents
    item.price_cents = cents
    audit.record(
        session,
        actor=actor,
        action="show_item.price",
        target=f"show_item:{item.id}",
        details={"show_id": item.show_id, "from": previous, "to": cents},
    )
    return PriceChange(
        item_id=item.id,
        number=item.number,
        title=item.title,
        previous_cents=previous,
        price_cents=cents,
        price=fmt.format(cents),
        impact=reprice_impact(session, item=item),
    )


def reprice_impact(session: Session, *, item: ShowItem) -> RepriceImpact:
    """The buyers' current invoices whose lines have ``item`` at another price than its own.

    An invoice not made in Stripe yet (queued, or failed to be made) has no lines: its job
    reads the prices when it runs, so it needs nothing. A void one is no buyer's live invoice
    (its Regenerate button uses the new price)."""
    claimed = select(Claim.platform_user_id).where(
        Claim.show_id == item.show_id, Claim.item_id == item.id
    )
    latest = invoice_panel.latest_attempts(item.show_id)
    regenerate: list[int] = []
    handles: list[str] = []
    paid: list[str] = []
    for invoice in session.scalars(
        select(Invoice)
        .join(latest, invoice_panel.is_current(Invoice, latest))
        .where(Invoice.buyer_platform_id.in_(claimed), Invoice.external_id.is_not(None))
        .order_by(Invoice.buyer_handle)
    ):
        lines = [line for line in invoice.line_items or [] if line.get("number") == item.number]
        if not lines or all(line.get("unit_price_cents") == item.price_cents for line in lines):
            continue
        if invoice.status is InvoiceStatus.PAID:
            paid.append(invoice.buyer_handle)
        elif invoice.status is not InvoiceStatus.VOID:
            regenerate.append(invoice.id)
            handles.append(invoice.buyer_handle)
    return RepriceImpact(regenerate, handles, paid)


@dataclass(frozen=True, slots=True)
class RepriceResult:
    regenerating: int
    paid: list[str]

    @property
    def message(self) -> str:
        n = self.regenerating
        said = (
            f"Regenerating {n} invoice{'s' if n != 1 else ''}: each is voided in Stripe and "
            "made again at the new price."
            if n
            else "No invoice needed regenerating."
        )
        if self.paid:
            said += " " + paid_note(self.paid)
        return said


def paid_note(handles: list[str]) -> str:
    shown = ", ".join(f"@{h}" for h in handles[:5]) + (", …" if len(handles) > 5 else "")
    n = len(handles)
    return (
        f"{n} paid invoice{'s are' if n != 1 else ' is'} never regenerated ({shown}): refund or "
        "charge the difference in Stripe."
    )


def regenerate_for_item(session: Session, *, actor: Actor, item_id: int) -> RepriceResult:
    """Make again, at the item's price now, every unpaid invoice that has the item at another
    price: an invoice open in Stripe is voided first (the void job then regenerates it); one
    already gone from Stripe is regenerated at once."""
    actor.require_change("regenerate invoices")
    item = _item(session, actor, item_id)
    impact = reprice_impact(session, item=item)
    if impact.regenerate:
        # Refused in words while Stripe is not connected (switched off by a downgrade, say),
        # as a void is, rather than queued to fail.
        _stripe_integration(session, actor.workspace_id)
    for invoice_id in impact.regenerate:
        invoice = session.get_one(Invoice, invoice_id)
        if invoice.status is InvoiceStatus.ERROR:  # gone from Stripe: nothing to void
            regenerate(session, actor=actor, invoice_id=invoice.id)
            continue
        outbox.enqueue(
            session,
            kind=VOID_KIND,
            payload={"invoice_id": invoice.id, "regenerate": True},
            idempotency_key=f"invoice-reprice:{invoice.id}",
            workspace_id=invoice.workspace_id,
            ahead=live_priority.goes_first(session, invoice.show_id),
        )
    audit.record(
        session,
        actor=actor,
        action="invoices.reprice",
        target=f"show_item:{item.id}",
        details={"show_id": item.show_id, "invoices": impact.regenerate, "paid": impact.paid},
    )
    return RepriceResult(len(impact.regenerate), impact.paid)


# -- generate -------------------------------------------------------------------------------


def _stripe_integration(session: Session, workspace_id: int) -> Integration:
    return providers.active_integration(session, workspace_id=workspace_id, provider="stripe")


def _add_invoice(
    session: Session,
    *,
    show: Show,
    integration: Integration,
    platform_user_id: str,
    handle: str,
    attempt: int,
) -> int | None:
    """Insert the (show, buyer, attempt) invoice and enqueue its job; None if it exists."""
    now = utcnow()
    invoice_id = session.execute(
        conflict_insert(session, Invoice)
        .values(
            workspace_id=show.workspace_id,
            show_id=show.id,
            integration_id=integration.id,
            provider="stripe",
            buyer_handle=handle,
            buyer_platform_id=platform_user_id,
            attempt=attempt,
            status=InvoiceStatus.DRAFT,
            amount_cents=0,
            currency=show.currency,
            line_items=[],
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["show_id", "buyer_platform_id", "attempt"])
        .returning(Invoice.id)
    ).scalar()
    if invoice_id is None:
        return None
    outbox.enqueue(
        session,
        kind=CREATE_KIND,
        payload={"invoice_id": invoice_id},
        idempotency_key=invoice_panel.job_key(invoice_id),
        workspace_id=show.workspace_id,
        ahead=live_priority.is_live(show),
    )
    return int(invoice_id)


def _buyers_without_invoice(session: Session, show: Show) -> list[tuple[str, str]]:
    invoiced = select(Invoice.buyer_platform_id).where(Invoice.show_id == show.id)
    return [
        (pid, handle)
        for pid, handle in session.execute(
            select(Claim.platform_user_id, func.max(Claim.buyer_handle))
            .where(Claim.show_id == show.id, Claim.platform_user_id.not_in(invoiced))
            .group_by(Claim.platform_user_id)
            .order_by(func.max(Claim.buyer_handle))
        )
    ]


def generate_all(session: Session, *, actor: Actor, show_id: int) -> int:
    """One invoice job per buyer of the show who has no invoice yet; how many were queued."""
    actor.require_change("generate invoices")
    show = invoice_panel.show_for(session, workspace_id=actor.workspace_id, show_id=show_id)
    integration = _stripe_integration(session, actor.workspace_id)
    queued = 0
    for pid, handle in _buyers_without_invoice(session, show):
        if _add_invoice(
            session,
            show=show,
            integration=integration,
            platform_user_id=pid,
            handle=handle,
            attempt=1,
        ):
            queued += 1
    audit.record(
        session,
        actor=actor,
        action="invoices.generate_all",
        target=f"show:{show.id}",
        details={"queued": queued},
    )
    return queued


def generate_one(session: Session, *, actor: Actor, show_id: int, platform_user_id: str) -> bool:
    """The buyer's invoice, unless they have one (False then)."""
    actor.require_change("generate invoices")
    show = invoice_panel.show_for(session, workspace_id=actor.workspace_id, show_id=show_id)
    integration = _stripe_integration(session, actor.workspace_id)
    handle = session.scalar(
        select(func.max(Claim.buyer_handle)).where(
            Claim.show_id == show.id, Claim.platform_user_id == platform_user_id
        )
    )
    if handle is None:
        raise NotFound("This buyer claimed nothing in this show.")
    current = _current(session, show.id, platform_user_id)
    if current is not None:
        return False
    made = _add_invoice(
        session,
        show=show,
        integration=integration,
        platform_user_id=platform_user_id,
        handle=handle,
        attempt=1,
    )
    if made:
        audit.record(
            session, actor=actor, action="invoice.generate", target=f"invoice:{made}", details={}
        )
    return made is not None


def _current(session: Session, show_id: int, platform_user_id: str) -> Invoice | None:
    return session.scalars(
        select(Invoice)
        .where(Invoice.show_id == show_id, Invoice.buyer_platform_id == platform_user_id)
        .order_by(Invoice.attempt.desc())
        .limit(1)
    ).first()


def regenerate(session: Session, *, actor: Actor, invoice_id: int) -> int:
    """A new invoice (the next attempt) for a buyer whose current invoice is void (or gone
    from Stripe)."""
    actor.require_change("regenerate invoices")
    old = invoice_panel.invoice_for(session, workspace_id=actor.workspace_id, invoice_id=invoice_id)
    # An Error invoice with a Stripe id is one reconciliation found deleted in Stripe: nothing
    # is left to void, and the buyer has nothing to pay.
    gone_from_stripe = old.status is InvoiceStatus.ERROR and old.external_id is not None
    if not (old.status is InvoiceStatus.VOID or gone_from_stripe) or old.show_id is None:
        raise InvalidInput("Only a voided invoice can be regenerated; void this one first.")
    invoice_panel.show_for(session, workspace_id=actor.workspace_id, show_id=old.show_id)
    made = next_attempt(session, old)
    if made is None:
        raise InvalidInput("This buyer already has a newer invoice; reload the show.")
    audit.record(
        session,
        actor=actor,
        action="invoice.regenerate",
        target=f"invoice:{made}",
        details={"replaces": old.id},
    )
    return made


def next_attempt(session: Session, old: Invoice) -> int | None:
    """The buyer's next invoice after ``old`` (void, or gone from Stripe); None if it exists."""
    assert old.show_id is not None
    return _add_invoice(
        session,
        show=session.get_one(Show, old.show_id),
        integration=_stripe_integration(session, old.workspace_id),
        platform_user_id=old.buyer_platform_id,
        handle=old.buyer_handle,
        attempt=old.attempt + 1,
    )


def void(session: Session, *, actor: Actor, invoice_id: int) -> None:
    """Void the invoice in Stripe (through the outbox); the webhook or the job marks it Void."""
    actor.require_change("void invoices")
    invoice = invoice_panel.invoice_for(
        session, workspace_id=actor.workspace_id, invoice_id=invoice_id
    )
    if invoice.status is InvoiceStatus.PAID:
        raise InvalidInput("This invoice is paid; refund the payment in Stripe instead.")
    if invoice.status is InvoiceStatus.VOID:
        return
    if invoice.external_id is None:
        raise InvalidInput(
            "This invoice is not in Stripe yet; wait for it to be created, then void it."
        )
    # Refused in words while Stripe is not connected or refuses the key, rather than queued
    # to fail; an unavailable Stripe is fine: the void waits for it.
    _stripe_integration(session, actor.workspace_id)
    outbox.enqueue(
        session,
        kind=VOID_KIND,
        payload={"invoice_id": invoice.id},
        idempotency_key=f"invoice-void:{invoice.id}",
        workspace_id=invoice.workspace_id,
        ahead=live_priority.goes_first(session, invoice.show_id),
    )
    audit.record(session, actor=actor, action="invoice.void", target=f"invoice:{invoice.id}")


def apply_stripe_truth(invoice: Invoice, theirs: StripeInvoice) -> None:
    """Make our copy say what Stripe says (reconciliation's fix), even downwards."""
    invoice.status = STRIPE_STATUS.get(theirs.status, invoice.status)
    invoice.error_message = None
    invoice.amount_cents = theirs.amount_due
    invoice.external_url = theirs.hosted_invoice_url or invoice.external_url
    if invoice.status is InvoiceStatus.PAID and invoice.paid_at is None:
        invoice.paid_at = utcnow()


def retry(session: Session, *, actor: Actor, invoice_id: int) -> None:
    """Run a failed invoice's job again (same keys: nothing reaches Stripe twice)."""
    actor.require_change("retry invoices")
    invoice = invoice_panel.invoice_for(
        session, workspace_id=actor.workspace_id, invoice_id=invoice_id
    )
    if invoice.status is not InvoiceStatus.ERROR or invoice.external_id is not None:
        raise InvalidInput("Only an invoice that failed to be created can be retried.")
    # Refused in words while Stripe is not connected (a downgrade switched it off, say) rather
    # than queued to fail again; a refused key may work again, and its job is what finds out.
    providers.connected_integration(session, workspace_id=actor.workspace_id, provider="stripe")
    job_id = session.scalar(
        select(OutboxJob.id).where(OutboxJob.idempotency_key == invoice_panel.job_key(invoice.id))
    )
    if job_id is None or not outbox_operators.replay(session, actor=actor, job_id=job_id):
        raise InvalidInput("This invoice's job is still running; wait for it to finish.")
    if live_priority.goes_first(session, invoice.show_id):
        # A replay takes its turn behind other work; a live show's invoice goes first.
        turns.move(session, [job_id], ahead=True)
    invoice.status, invoice.error_message = InvoiceStatus.DRAFT, None
