"""What differs between our invoices of a show and Stripe's: Stripe's side read with no
transaction open (a snapshot), then compared with our rows without touching the database.
reconciliation.py stores the differences as findings and fixes them.

Tested in tests/invoicing/test_reconciliation.py (against the Stripe sandbox).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from backend.integrations.errors import ProviderAuthFailed, ProviderRejected
from backend.integrations.stripe import StripeAdapter, StripeInvoice
from backend.invoicing import service as invoicing
from models import Invoice, InvoiceStatus

# What differs (InvoiceDiscrepancy.field).
STATUS = "status"
AMOUNT = "amount"
MISSING = "missing"  # our invoice's Stripe copy is gone
UNLINKED = "unlinked"  # Stripe has an invoice carrying our id that we never stored
DUPLICATE = "duplicate"  # Stripe has a second live invoice carrying our id
_DEAD_IN_STRIPE = ("void", "uncollectible")


@dataclass(frozen=True)
class Snapshot:
    """What Stripe said about the show's invoices, read with no transaction open."""

    by_id: dict[str, StripeInvoice]
    gone: set[str]  # our external ids Stripe answered 404 for
    by_hub_id: dict[int, list[StripeInvoice]]


# -- reading Stripe ---------------------------------------------------------------------------


def retrieve(stripe: StripeAdapter, external_id: str) -> StripeInvoice | None:
    """Stripe's invoice, or None when Stripe says it does not exist."""
    try:
        return stripe.retrieve_invoice(external_id)
    except ProviderRejected as exc:
        if exc.status == 404 and not isinstance(exc, ProviderAuthFailed):
            return None
        raise


def take_snapshot(
    stripe: StripeAdapter, *, workspace_id: int, show_id: int, external_ids: Iterable[str]
) -> Snapshot:
    found = [
        invoice
        for invoice in stripe.invoices_with_metadata("hub_show_id", str(show_id))
        if invoice.metadata.get("hub_workspace_id") == str(workspace_id)
    ]
    by_id = {invoice.id: invoice for invoice in found}
    by_hub_id: dict[int, list[StripeInvoice]] = {}
    for invoice in found:
        hub_id = invoice.metadata.get("hub_invoice_id", "")
        if hub_id.isdigit():
            by_hub_id.setdefault(int(hub_id), []).append(invoice)
    gone: set[str] = set()
    # Search misses what its index has not caught up with (Stripe: up to a minute) and invoices
    # whose metadata was edited by hand: ask for each of ours by id before calling it missing.
    for external_id in sorted(set(external_ids) - by_id.keys()):
        retrieved = retrieve(stripe, external_id)
        if retrieved is None:
            gone.add(external_id)
        else:
            by_id[retrieved.id] = retrieved
    return Snapshot(by_id=by_id, gone=gone, by_hub_id=by_hub_id)


# -- comparing ----------------------------------------------------------------------------------


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:.2f} {currency.upper()}"


def compare(
    invoices: list[Invoice], snapshot: Snapshot, creating: set[int]
) -> tuple[dict[tuple[int, str], tuple[str, str]], set[int]]:
    """((invoice id, field) -> (ours, theirs)) for every difference, and the invoices this
    snapshot cannot judge (linked after it was taken): their open findings stay as they are."""
    wanted: dict[tuple[int, str], tuple[str, str]] = {}
    unknown: set[int] = set()
    for invoice in invoices:
        carrying = snapshot.by_hub_id.get(invoice.id, [])
        if invoice.external_id is None:
            if invoice.id in creating:
                unknown.add(invoice.id)
                continue
            if carrying:
                chosen = _prefer_live(carrying)
                wanted[(invoice.id, UNLINKED)] = ("not linked", chosen.id)
                carrying = [c for c in carrying if c.id != chosen.id]
        else:
            theirs = snapshot.by_id.get(invoice.external_id)
            if theirs is not None:
                status = invoicing.STRIPE_STATUS.get(theirs.status)
                if status is not None and status is not invoice.status:
                    wanted[(invoice.id, STATUS)] = (invoice.status.value, status.value)
                if theirs.amount_due != invoice.amount_cents:
                    wanted[(invoice.id, AMOUNT)] = (
                        _money(invoice.amount_cents, invoice.currency),
                        _money(theirs.amount_due, theirs.currency),
                    )
            elif invoice.external_id in snapshot.gone:
                # A void invoice has nothing left to collect; an Error one was already marked.
                if invoice.status not in (InvoiceStatus.VOID, InvoiceStatus.ERROR):
                    wanted[(invoice.id, MISSING)] = (invoice.status.value, "not in Stripe")
            else:
                unknown.add(invoice.id)
                continue
        extra = sorted(
            c.id
            for c in carrying
            if c.id != invoice.external_id and c.status not in _DEAD_IN_STRIPE
        )
        if extra:
            wanted[(invoice.id, DUPLICATE)] = (invoice.external_id or "ours", ", ".join(extra))
    return {k: (o[:200], t[:200]) for k, (o, t) in wanted.items()}, unknown


def _prefer_live(candidates: list[StripeInvoice]) -> StripeInvoice:
    live = [c for c in candidates if c.status not in _DEAD_IN_STRIPE]
    return sorted(live or candidates, key=lambda c: c.id)[0]
