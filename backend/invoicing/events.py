"""What Stripe's invoice events do to our invoices.

Order-independent: each event can only move an invoice up its ladder (draft < sent < paid/void),
so ``invoice.paid`` arriving before ``invoice.finalized`` still ends Paid, and a late
``invoice.finalized`` changes nothing. Events for invoices we do not know are recorded and
otherwise ignored (an invoice made by hand in Stripe's dashboard is not ours to track).

Which event runs which handler: ``STRIPE_HANDLERS`` in invoicing/jobs.py.

Tested in tests/platform/test_inbox_processing.py and tests/platform/test_inbox_batch.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session

from backend.invoicing import service as invoicing
from models import Buyer, EngagementEvent, InboundEvent, Invoice, InvoiceStatus, utcnow

EVENT_STATUS = {
    "invoice.finalized": InvoiceStatus.SENT,
    "invoice.sent": InvoiceStatus.SENT,
    "invoice.paid": InvoiceStatus.PAID,
    "invoice.voided": InvoiceStatus.VOID,
    # Stripe's "uncollectible" has no place of its own here: the operator has given up on it.
    "invoice.marked_uncollectible": InvoiceStatus.VOID,
}


@dataclass(frozen=True, slots=True)
class _Ours:
    invoice: Invoice
    # The buyer the invoice is for, when we know them (their engagement is recorded).
    buyer_id: int | None


# session.info key of what ``prefetch`` loaded: (workspace id, Stripe invoice id) -> ours.
_PREFETCHED = "stripe_events.invoices"


def _found(session: Session) -> dict[tuple[int, str], _Ours]:
    """The invoices this session's transaction has locked so far, by workspace and Stripe id."""
    found: dict[tuple[int, str], _Ours] = session.info.setdefault(_PREFETCHED, {})
    return found


def prefetch(session: Session, events: Sequence[InboundEvent]) -> list[_Ours]:
    """The invoices a batch of events is about, locked (in id order, as every batch locks
    them) and kept in the session for ``_ours``: one query instead of one per event."""
    wanted: dict[int, set[str]] = {}
    for event in events:
        data = event.payload.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        stripe_id = obj.get("id") if isinstance(obj, dict) else None
        # A malformed event is left to its handler, which fails it alone.
        if event.workspace_id is not None and isinstance(stripe_id, str):
            wanted.setdefault(event.workspace_id, set()).add(stripe_id)
    cache = _found(session)
    for workspace_id, stripe_ids in wanted.items():
        rows = session.execute(
            _locked_with_buyer()
            .where(Invoice.workspace_id == workspace_id, Invoice.external_id.in_(stripe_ids))
            .order_by(Invoice.id)
        )
        for invoice, buyer_id in rows:
            if invoice.external_id is not None:
                cache[(workspace_id, invoice.external_id)] = _Ours(invoice, buyer_id)
    return list(cache.values())


def _ours(session: Session, event: InboundEvent, obj: dict[str, Any]) -> _Ours | None:
    """Our invoice for Stripe's, locked, with its buyer's id: by Stripe's id, or (an event that
    overtook the job storing that id) by the row id the job put in its metadata."""
    cache = _found(session)
    if event.workspace_id is not None:
        prefetched = cache.get((event.workspace_id, str(obj.get("id"))))
        if prefetched is not None:
            return prefetched
    # Not prefetched: the queries below must see what earlier events of the batch changed
    # (an invoice given its Stripe id from the metadata of the event before this one).
    session.flush()
    stmt = _locked_with_buyer().where(Invoice.external_id == obj.get("id"))
    if event.workspace_id is not None:
        stmt = stmt.where(Invoice.workspace_id == event.workspace_id)
    found = session.execute(stmt).first()
    row_id = str((obj.get("metadata") or {}).get("hub_invoice_id") or "")
    if found is None and row_id.isdigit() and event.workspace_id is not None:
        found = session.execute(
            _locked_with_buyer().where(
                Invoice.id == int(row_id), Invoice.workspace_id == event.workspace_id
            )
        ).first()
        if found is not None and found[0].external_id not in (None, obj.get("id")):
            return None  # metadata copied onto another invoice by hand: not ours
        if found is not None:
            found[0].external_id = obj.get("id")
    if found is None:
        return None
    ours = _Ours(found[0], found[1])
    if event.workspace_id is not None and isinstance(obj.get("id"), str):
        cache[(event.workspace_id, obj["id"])] = ours
    return ours


def _locked_with_buyer() -> Select[Invoice, int]:
    # (Buyer.id is None when no buyer matches: an outer join.)
    # One round trip for both: this runs once per event, hundreds of times a second at peak.
    return (
        select(Invoice, Buyer.id)
        .outerjoin(
            Buyer,
            and_(
                Buyer.workspace_id == Invoice.workspace_id,
                Buyer.platform_user_id == Invoice.buyer_platform_id,
            ),
        )
        .with_for_update(of=Invoice)
    )


def _when(seconds: Any) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC) if seconds else utcnow()


def invoice_status(session: Session, event: InboundEvent) -> None:
    obj = event.payload["data"]["object"]
    ours = _ours(session, event, obj)
    if ours is None:
        return
    invoice = ours.invoice
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
            ours,
            "invoice.paid",
            {"amount_cents": obj.get("amount_paid"), "currency": obj.get("currency")},
        )
    if target is InvoiceStatus.SENT and event.event_type == "invoice.sent":
        invoice.sent_at = invoice.sent_at or _when(event.payload.get("created"))


def invoice_payment_failed(session: Session, event: InboundEvent) -> None:
    obj = event.payload["data"]["object"]
    ours = _ours(session, event, obj)
    if ours is None or ours.invoice.status in (InvoiceStatus.PAID, InvoiceStatus.VOID):
        return
    ours.invoice.error_message = (
        f"A payment attempt failed (attempt {obj.get('attempt_count', '?')}); the buyer can try "
        "again from the same link."
    )
    _engagement(
        session,
        event,
        ours,
        "invoice.payment_failed",
        {"attempt_count": obj.get("attempt_count")},
    )


def _engagement(
    session: Session, event: InboundEvent, ours: _Ours, name: str, properties: dict[str, Any]
) -> None:
    if ours.buyer_id is None:
        return
    invoice = ours.invoice
    # UNIQUE(source, source_event_id) keeps this once per Stripe event; the inbox job runs each
    # event once, so the row is simply added.
    session.add(
        EngagementEvent(
            workspace_id=invoice.workspace_id,
            source="stripe",
            source_event_id=event.external_id,
            subject_type="buyer",
            subject_id=ours.buyer_id,
            name=name,
            occurred_at=_when(event.payload.get("created")),
            properties={**properties, "invoice_id": invoice.id, "show_id": invoice.show_id},
        )
    )
