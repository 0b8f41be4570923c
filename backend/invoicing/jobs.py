"""The invoicing domain's work: the outbox jobs that make, void and send invoices through
Stripe and Messenger, what each of Stripe's invoice events does, and the hourly reconciliation
against Stripe.

Covered by tests/jobs/test_discovery.py (what is declared here is loaded) and tests/invoicing/.
"""

from __future__ import annotations

from backend.db import get_engine
from backend.invoicing import buyers, checkout_links, events, reconciliation, stripe_invoices
from backend.invoicing import service as invoicing
from backend.platform import inbox, outbox
from backend.platform.periodic import periodic

# -- outbox job kinds -----------------------------------------------------------------------

outbox.declare(
    invoicing.CREATE_KIND,
    stripe_invoices.create_invoice,
    provider="stripe",
    on_dead=stripe_invoices.mark_failed,
)
outbox.declare(invoicing.VOID_KIND, stripe_invoices.void_invoice, provider="stripe")
outbox.declare(buyers.SYNC_CUSTOMER, buyers.sync_customer, provider="stripe")
outbox.declare(checkout_links.SEND_KIND, checkout_links.send_by_messenger, provider="messenger")

# -- inbox handlers: a connected Stripe account's invoice events ----------------------------

# The status each event moves an invoice to: events.EVENT_STATUS.
STRIPE_HANDLERS: dict[str, inbox.InboxHandler] = {
    "invoice.finalized": events.invoice_status,
    "invoice.sent": events.invoice_status,
    "invoice.paid": events.invoice_status,
    "invoice.voided": events.invoice_status,
    "invoice.marked_uncollectible": events.invoice_status,
    "invoice.payment_failed": events.invoice_payment_failed,
}
# Both handlers only lock and change the invoice they load and add rows: their writes can wait
# for the batch's commit (see inbox.register).
inbox.register("stripe", STRIPE_HANDLERS, defer_writes=True, prefetch=events.prefetch)

# -- periodic jobs --------------------------------------------------------------------------


@periodic(
    id="invoice-reconciliation",
    seconds=3600,
    description="Compare recent shows' invoices with Stripe's; alert once on new differences.",
)
def invoice_reconciliation() -> None:
    # Takes the engine: Stripe is called between transactions, never inside one.
    reconciliation.reconcile_recent(get_engine())
