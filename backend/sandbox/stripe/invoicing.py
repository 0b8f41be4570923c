"""Invoice items and invoices: draft → open (finalize) → sent → paid / void / uncollectible,
with the events Stripe sends at each step.

Tested in tests/sandbox/test_stripe.py and tests/sandbox/test_stripe_fidelity.py (through the
official stripe SDK)."""

from __future__ import annotations

from typing import Any

from backend.sandbox.store import new_id, now
from backend.sandbox.stripe.core import StripeError, get
from backend.sandbox.stripe.formdata import as_bool, as_int
from backend.sandbox.stripe.objects import fixtures, list_object, shape, update
from backend.sandbox.stripe.op import Op, metadata, paginate, search
from backend.sandbox.stripe.payments import card_declined, new_intent, settle_intent
from backend.sandbox.stripe.resources import price_from

OPEN_STATES = {"open"}


def hosted_url(op: Op, invoice_id: str) -> str:
    return f"{op.ctx.public_url}/stripe/_pages/invoice/{op.account}/{invoice_id}"


# -- invoice items --------------------------------------------------------------------------


def _item_amount(op: Op, params: dict[str, Any]) -> tuple[int, int, str | None]:
    """(total amount, quantity, price id) from amount, unit_amount_decimal, price or pricing."""
    if params.get("amount") is not None and params.get("quantity") is not None:
        # Stripe's own answer: `amount` is a line's total, so a quantity beside it is refused.
        raise StripeError(400, "You may only specify one of these parameters: amount, quantity.")
    quantity = as_int(params.get("quantity"), 1) or 1
    pricing = params.get("pricing") or {}
    if params.get("price") or pricing.get("price") or params.get("price_data"):
        price = price_from(
            op,
            {
                "price": params.get("price") or pricing.get("price"),
                "price_data": params.get("price_data"),
            },
        )
        return int(price["unit_amount"]) * quantity, quantity, str(price["id"])
    if params.get("unit_amount_decimal") is not None:
        return round(float(params["unit_amount_decimal"]) * quantity), quantity, None
    if params.get("amount") is not None:
        return int(params["amount"]), quantity, None
    raise StripeError(
        400,
        "You must specify either `amount`, `unit_amount_decimal`, `price` or `pricing`.",
        code="parameter_missing",
        param="amount",
    )


def _line_for(op: Op, item: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    return shape(
        "line_item",
        id=new_id("il_", 24),
        amount=item["amount"],
        currency=item["currency"],
        description=item["description"],
        discountable=True,
        invoice=invoice_id,
        metadata=dict(item["metadata"]),
        quantity=item["quantity"],
        period=item["period"],
        discount_amounts=[],
        discounts=[],
        parent={
            "type": "invoice_item_details",
            "invoice_item_details": {
                "invoice_item": item["id"],
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": None,
            },
        },
        pricing=item["pricing"],
    )


def create_invoice_item(op: Op) -> dict[str, Any]:
    customer = get(op.s, op.account, "customer", op.require("customer"), "customer")
    amount, quantity, price_id = _item_amount(op, op.params)
    invoice_id = op.params.get("invoice")
    invoice = None
    if invoice_id:
        invoice = get(op.s, op.account, "invoice", invoice_id, "invoice")
        if invoice["status"] != "draft":
            raise StripeError(
                400,
                f"You can only add invoice items to draft invoices; {invoice_id} "
                f"is {invoice['status']}.",
                code="invoice_not_editable",
                param="invoice",
            )
        if invoice["customer"] != customer["id"]:
            raise StripeError(
                400, "The invoice item's customer must match the invoice's.", param="invoice"
            )
    stamp = now()
    item = shape(
        "invoiceitem",
        id=new_id("ii_", 24),
        amount=amount,
        currency=str(op.params.get("currency") or (invoice or {}).get("currency") or "usd").lower(),
        customer=customer["id"],
        date=stamp,
        description=op.params.get("description"),
        discountable=True,
        discounts=[],
        invoice=invoice_id,
        metadata=metadata(op),
        period={"start": stamp, "end": stamp},
        proration=False,
        quantity=quantity,
        tax_rates=[],
        pricing={
            "type": "price_details" if price_id else None,
            "price_details": {"price": price_id, "product": None} if price_id else None,
            "unit_amount_decimal": str(amount // quantity),
        },
        net_amount=amount,
    )
    op.table("invoiceitem")[item["id"]] = item
    if invoice is not None:
        _attach(op, invoice, item)
    op.emit("invoiceitem.created", item)
    return item


def _attach(op: Op, invoice: dict[str, Any], item: dict[str, Any]) -> None:
    item["invoice"] = invoice["id"]
    invoice["lines"]["data"].append(_line_for(op, item, invoice["id"]))
    _recompute(invoice)


def _recompute(invoice: dict[str, Any]) -> None:
    subtotal = sum(int(line["amount"]) for line in invoice["lines"]["data"])
    invoice.update(
        subtotal=subtotal,
        subtotal_excluding_tax=subtotal,
        total=subtotal,
        total_excluding_tax=subtotal,
        amount_due=subtotal,
        amount_remaining=subtotal - invoice["amount_paid"],
    )


# -- invoices -------------------------------------------------------------------------------


def create_invoice(op: Op) -> dict[str, Any]:
    customer = get(op.s, op.account, "customer", op.require("customer"), "customer")
    method = op.params.get("collection_method", "charge_automatically")
    if method not in ("send_invoice", "charge_automatically"):
        raise StripeError(
            400,
            "Invalid collection_method: must be one of charge_automatically or send_invoice",
            param="collection_method",
        )
    days = as_int(op.params.get("days_until_due"))
    if method == "send_invoice" and days is None and not op.params.get("due_date"):
        raise StripeError(
            400,
            "Missing required param: days_until_due. It is required when "
            "collection_method is send_invoice.",
            code="parameter_missing",
            param="days_until_due",
        )
    if method == "charge_automatically" and days is not None:
        raise StripeError(
            400,
            "You may only specify days_until_due when collection_method is send_invoice.",
            param="days_until_due",
        )
    info = op.s["accounts"][op.account]
    stamp = now()
    invoice_id = new_id("in_", 24)
    invoice = shape(
        "invoice",
        id=invoice_id,
        customer=customer["id"],
        customer_email=customer["email"],
        customer_name=customer["name"],
        customer_phone=customer["phone"],
        account_name=info["name"],
        account_country=info["country"],
        status="draft",
        collection_method=method,
        currency=str(op.params.get("currency") or "usd").lower(),
        description=op.params.get("description"),
        footer=op.params.get("footer"),
        metadata=metadata(op),
        auto_advance=as_bool(op.params.get("auto_advance")),
        created=stamp,
        period_start=stamp,
        period_end=stamp,
        attempt_count=0,
        attempted=False,
        amount_paid=0,
        amount_overpaid=0,
        amount_shipping=0,
        starting_balance=0,
        post_payment_credit_notes_amount=0,
        pre_payment_credit_notes_amount=0,
        billing_reason="manual",
        issuer={"type": "self"},
        total_discount_amounts=[],
        total_taxes=[],
        status_transitions=dict(fixtures()["invoice"]["status_transitions"]),
        due_date=as_int(op.params.get("due_date")),
        lines=list_object([], f"/v1/invoices/{invoice_id}/lines"),
        custom_fields=None,
        statement_descriptor=op.params.get("statement_descriptor"),
    )
    # days_until_due is not an invoice field in this API version; kept aside for finalize.
    op.s.setdefault("invoice_terms", {})[invoice_id] = days
    _recompute(invoice)
    op.table("invoice")[invoice_id] = invoice
    if op.params.get("pending_invoice_items_behavior") == "include":
        for item in op.table("invoiceitem").values():
            if item["customer"] == customer["id"] and item["invoice"] is None:
                _attach(op, invoice, item)
    op.emit("invoice.created", invoice)
    return invoice


def _invoice(op: Op) -> dict[str, Any]:
    return get(op.s, op.account, "invoice", op.path["id"])


def retrieve_invoice(op: Op) -> dict[str, Any]:
    return _invoice(op)


def update_invoice(op: Op) -> dict[str, Any]:
    invoice = _invoice(op)
    previous: dict[str, Any] = {}
    if "metadata" in op.params:
        previous["metadata"] = dict(invoice["metadata"])
        invoice["metadata"] = metadata(op, invoice["metadata"])
    for key in ("description", "footer", "auto_advance"):
        if key in op.params:
            if invoice["status"] != "draft" and key != "description":
                raise StripeError(
                    400,
                    f"You can only modify {key} on draft invoices.",
                    code="invoice_not_editable",
                    param=key,
                )
            previous[key] = invoice[key]
            invoice[key] = as_bool(op.params[key]) if key == "auto_advance" else op.params[key]
    op.emit("invoice.updated", invoice, previous)
    return invoice


def add_lines(op: Op) -> dict[str, Any]:
    invoice = _invoice(op)
    if invoice["status"] != "draft":
        raise StripeError(
            400, "You can only add lines to draft invoices.", code="invoice_not_editable"
        )
    for index, line in enumerate(op.require("lines")):
        if existing := line.get("invoice_item"):
            item = get(op.s, op.account, "invoiceitem", existing, f"lines[{index}][invoice_item]")
            if item["invoice"] not in (None, invoice["id"]):
                raise StripeError(
                    400,
                    f"Invoice item {existing} is already on another invoice.",
                    param=f"lines[{index}][invoice_item]",
                )
            if item["invoice"] is None:
                _attach(op, invoice, item)
            continue
        amount, quantity, price_id = _item_amount(op, line)
        stamp = now()
        item = shape(
            "invoiceitem",
            id=new_id("ii_", 24),
            amount=amount,
            currency=invoice["currency"],
            customer=invoice["customer"],
            date=stamp,
            description=line.get("description"),
            discountable=True,
            invoice=None,
            metadata=dict(line.get("metadata") or {}),
            period={"start": stamp, "end": stamp},
            proration=False,
            quantity=quantity,
            pricing={
                "type": "price_details" if price_id else None,
                "price_details": None,
                "unit_amount_decimal": str(amount // quantity),
            },
            net_amount=amount,
        )
        op.table("invoiceitem")[item["id"]] = item
        _attach(op, invoice, item)
    op.emit("invoice.updated", invoice)
    return invoice


def finalize(op: Op, invoice: dict[str, Any]) -> None:
    if invoice["status"] != "draft":
        raise StripeError(
            400,
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
            code="invoice_not_editable",
        )
    customer = get(op.s, op.account, "customer", invoice["customer"])
    stamp = now()
    sequence = customer["next_invoice_sequence"]
    customer["next_invoice_sequence"] = sequence + 1
    days = op.s.get("invoice_terms", {}).get(invoice["id"])
    invoice.update(
        status="open",
        number=f"{customer['invoice_prefix']}-{sequence:04d}",
        hosted_invoice_url=hosted_url(op, invoice["id"]),
        invoice_pdf=hosted_url(op, invoice["id"]) + "/pdf",
        effective_at=stamp,
        webhooks_delivered_at=stamp,
        ending_balance=0,
    )
    invoice["status_transitions"]["finalized_at"] = stamp
    if invoice["collection_method"] == "send_invoice" and invoice["due_date"] is None:
        invoice["due_date"] = stamp + 86400 * (days or 30)
    op.emit("invoice.finalized", invoice)
    if invoice["amount_due"] == 0:
        # Stripe marks a zero-amount invoice paid at once.
        mark_paid(op, invoice)


def finalize_invoice(op: Op) -> dict[str, Any]:
    invoice = _invoice(op)
    finalize(op, invoice)
    return invoice


def send_invoice(op: Op) -> dict[str, Any]:
    invoice = _invoice(op)
    if invoice["collection_method"] != "send_invoice":
        raise StripeError(
            400,
            "You can only manually send an invoice if its collection method is 'send_invoice'.",
            code="invoice_not_editable",
        )
    if invoice["status"] == "draft":
        finalize(op, invoice)
    if invoice["status"] != "open":
        raise StripeError(
            400,
            f"You can't send an invoice that is {invoice['status']}.",
            code="invoice_not_editable",
        )
    customer = get(op.s, op.account, "customer", invoice["customer"])
    if not customer["email"]:
        raise StripeError(
            400,
            f"Customer {customer['id']} has no email address; an invoice "
            "can only be sent to a customer with an email.",
            param="customer",
        )
    op.s.setdefault("sent_invoices", {}).setdefault(invoice["id"], []).append(
        {"to": customer["email"], "at": now()}
    )
    op.emit("invoice.sent", invoice)
    return invoice


def mark_paid(op: Op, invoice: dict[str, Any], charge: dict[str, Any] | None = None) -> None:
    stamp = now()
    previous = {"status": invoice["status"], "amount_paid": invoice["amount_paid"]}
    update(
        invoice,
        status="paid",
        amount_paid=invoice["amount_due"],
        amount_remaining=0,
        attempted=True,
    )
    invoice["status_transitions"]["paid_at"] = stamp
    if charge is not None:
        invoice["attempt_count"] += 1
    op.emit("invoice.paid", invoice, previous)
    op.emit("invoice.payment_succeeded", invoice, previous)


def pay(
    op: Op, invoice: dict[str, Any], payment_method: str | None, out_of_band: bool = False
) -> None:
    """Pay an open invoice with a card (or out of band). A declined card raises 402 after the
    events a failed attempt produces."""
    if invoice["status"] == "draft":
        finalize(op, invoice)
    if invoice["status"] == "paid":
        raise StripeError(400, "Invoice is already paid")
    if invoice["status"] not in OPEN_STATES and invoice["status"] != "uncollectible":
        raise StripeError(
            400,
            f"You can't pay an invoice that is {invoice['status']}.",
            code="invoice_not_editable",
        )
    if out_of_band:
        mark_paid(op, invoice)
        return
    if not payment_method:
        raise StripeError(
            400,
            "This customer has no attached payment source or default payment "
            "method. Please consider adding a default payment method.",
            param="payment_method",
        )
    intent = new_intent(
        op,
        invoice["amount_due"],
        invoice["currency"],
        invoice["customer"],
        {"description": f"Invoice {invoice['number']}", "metadata": invoice["metadata"]},
    )
    charge = settle_intent(op, intent, payment_method)
    if intent["status"] == "succeeded":
        mark_paid(op, invoice, charge)
        return
    invoice["attempt_count"] += 1
    invoice["attempted"] = True
    op.emit("invoice.payment_failed", invoice)
    raise card_declined(intent, charge)


def pay_invoice(op: Op) -> dict[str, Any]:
    invoice = _invoice(op)
    pay(
        op,
        invoice,
        op.params.get("payment_method") or op.params.get("source"),
        as_bool(op.params.get("paid_out_of_band")),
    )
    return invoice


def void_invoice(op: Op) -> dict[str, Any]:
    invoice = _invoice(op)
    if invoice["status"] not in ("open", "uncollectible"):
        raise StripeError(
            400,
            f"You can only void open invoices; this one is {invoice['status']}.",
            code="invoice_not_editable",
        )
    previous = {"status": invoice["status"]}
    invoice["status"] = "void"
    invoice["amount_remaining"] = 0
    invoice["status_transitions"]["voided_at"] = now()
    op.emit("invoice.voided", invoice, previous)
    return invoice


def mark_uncollectible(op: Op) -> dict[str, Any]:
    invoice = _invoice(op)
    if invoice["status"] != "open":
        raise StripeError(
            400,
            f"You can only mark open invoices uncollectible; this one is {invoice['status']}.",
            code="invoice_not_editable",
        )
    previous = {"status": invoice["status"]}
    invoice["status"] = "uncollectible"
    invoice["status_transitions"]["marked_uncollectible_at"] = now()
    op.emit("invoice.marked_uncollectible", invoice, previous)
    return invoice


def list_invoices(op: Op) -> dict[str, Any]:
    items = list(op.table("invoice").values())
    for key in ("customer", "status", "collection_method", "subscription"):
        if value := op.params.get(key):
            items = [i for i in items if i[key] == value]
    return paginate(op, items, "/v1/invoices")


def search_invoices(op: Op) -> dict[str, Any]:
    return search(op, list(op.table("invoice").values()), "/v1/invoices/search")


def list_lines(op: Op) -> dict[str, Any]:
    invoice = _invoice(op)
    return paginate(
        op, list(reversed(invoice["lines"]["data"])), f"/v1/invoices/{invoice['id']}/lines"
    )
