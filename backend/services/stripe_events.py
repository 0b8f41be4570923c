"""What Stripe's invoice events do to our invoices.

Order-independent: each event can only move an invoice up its ladder (draft < sent < paid/void),
so ``invoice.paid`` arriving before ``invoice.finalized`` still ends Paid, and a late
``invoice.finalized`` changes nothing. Events for invoices we do not know are recorded and
otherwise ignored (an invoice made by hand in Stripe's dashboard is not ours to track).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.services import inbox, invoicing
from models import Buyer, EngagementEvent, InboundEvent, Invoice, InvoiceStatus, utcnow

EVENT_STATUS = {
    "invoice.finalized": InvoiceStatus.SENT,
    "invoice.sent": InvoiceStatus.SENT,
    "invoice.paid": InvoiceStatus.PAID,
    "invoice.voided": InvoiceStatus.VOID,
    # Stripe's "uncollectible" has no place of its own here: the operator has given up on it.
    "invoice.marked_uncollectible": InvoiceStatus.VOID,
}


def _ours(session: Session, event: InboundEvent, obj: dict[str, Any]) -> Invoice | None:
    """Our invoice for Stripe's: by its id, or (an event that overtook the job storing that
    id) by the row id the job put in its metadata."""
    stmt = select(Invoice).where(Invoice.external_id == obj.get("id"))
    if event.workspace_id is not None:
        stmt = stmt.where(Invoice.workspace_id == event.workspace_id)
    found = session.scalars(stmt.with_for_update()).first()
    ours = str((obj.get("metadata") or {}).get("hub_invoice_id") or "")
    if found is None and ours.isdigit() and event.workspace_id is not None:
        found = session.scalars(
            select(Invoice)
            .where(Invoice.id == int(ours), Invoice.workspace_id == event.workspace_id)
            .with_for_update()
        ).first()
        if found is not None and found.external_id not in (None, obj.get("id")):
            return None  # metadata copied onto another invoice by hand: not ours
        if found is not None:
            found.external_id = obj.get("id")
    return found


def _when(seconds: Any) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC) if seconds else utcnow()


@inbox.handles("stripe", *EVENT_STATUS)
def invoice_status(session: Session, event: InboundEvent) -> None:
    obj = event.payload["data"]["object"]
    invoice = _ours(session, event, obj)
    if invoice is None:
        return
    target = EVENT_STATUS[event.event_type]
    if invoice.external_url is None and obj.get("hosted_invoice_url"):
        invoice.external_url = obj["hosted_invoice_url"]
    invoicing.raise_status(invoice, target)
    transitions = obj.get("status_transitions") or {}
    if target is InvoiceStatus.PAID:
        invoice.paid_at = invoice.paid_at or _when(transitions.get("paid_at"))
        _engagement(
            session,
            event,
            invoice,
            "invoice.paid",
            {"amount_cents": obj.get("amount_paid"), "currency": obj.get("currency")},
        )
    if target is InvoiceStatus.SENT and event.event_type == "invoice.sent":
        invoice.sent_at = invoice.sent_at or _when(event.payload.get("created"))


@inbox.handles("stripe", "invoice.payment_failed")
def invoice_payment_failed(session: Session, event: InboundEvent) -> None:
    obj = event.payload["data"]["object"]
    invoice = _ours(session, event, obj)
    if invoice is None or invoice.status in (InvoiceStatus.PAID, InvoiceStatus.VOID):
        return
    invoice.error_message = (
        f"A payment attempt failed (attempt {obj.get('attempt_count', '?')}); the buyer can try "
        "again from the same link."
    )
    _engagement(
        session,
        event,
        invoice,
        "invoice.payment_failed",
        {"attempt_count": obj.get("attempt_count")},
    )


def _engagement(
    session: Session, event: InboundEvent, invoice: Invoice, name: str, properties: dict[str, Any]
) -> None:
    buyer_id = session.scalar(
        select(Buyer.id).where(
            Buyer.workspace_id == invoice.workspace_id,
            Buyer.platform_user_id == invoice.buyer_platform_id,
        )
    )
    if buyer_id is None:
        return
    # UNIQUE(source, source_event_id) keeps this once per Stripe event; the inbox job runs each
    # event once, so the row is simply added.
    session.add(
        EngagementEvent(
            workspace_id=invoice.workspace_id,
            source="stripe",
            source_event_id=event.external_id,
            subject_type="buyer",
            subject_id=buyer_id,
            name=name,
            occurred_at=_when(event.payload.get("created")),
            properties={**properties, "invoice_id": invoice.id, "show_id": invoice.show_id},
        )
    )
