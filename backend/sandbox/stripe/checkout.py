"""Checkout Sessions (payment and subscription modes) and the subscriptions they create.

Tested in tests/sandbox/test_stripe.py and tests/sandbox/test_stripe_fidelity.py (through the
official stripe SDK)."""

from __future__ import annotations

from typing import Any

from backend.sandbox.store import new_id, now
from backend.sandbox.stripe.core import StripeError, get
from backend.sandbox.stripe.formdata import as_bool, as_int
from backend.sandbox.stripe.objects import list_object, shape, update
from backend.sandbox.stripe.op import Op, metadata, paginate
from backend.sandbox.stripe.payments import new_intent, settle_intent
from backend.sandbox.stripe.resources import price_from

MONTH = 30 * 86400


def page_url(op: Op, session_id: str) -> str:
    return f"{op.ctx.public_url}/stripe/_pages/checkout/{op.account}/{session_id}"


def create_session(op: Op) -> dict[str, Any]:
    mode = op.require("mode")
    if mode not in ("payment", "subscription"):
        raise StripeError(
            400,
            f"The sandbox supports `payment` and `subscription` modes, not `{mode}`.",
            param="mode",
        )
    op.require("success_url")
    raw_items = op.require("line_items")
    lines: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_items):
        price = price_from(op, raw)
        quantity = as_int(raw.get("quantity"), 1) or 1
        recurring = price["recurring"] is not None
        if mode == "payment" and recurring:
            raise StripeError(
                400,
                "You specified `payment` mode but passed a recurring price. "
                "Either switch to `subscription` mode or use only one-time prices.",
                param=f"line_items[{index}][price]",
            )
        lines.append(
            {
                "price": price["id"],
                "quantity": quantity,
                "amount": int(price["unit_amount"]) * quantity,
                "currency": price["currency"],
                "recurring": recurring,
            }
        )
    if mode == "subscription" and not any(line["recurring"] for line in lines):
        raise StripeError(
            400,
            "You must provide at least one recurring price in `subscription` "
            "mode when using prices.",
            param="line_items",
        )
    customer = op.params.get("customer")
    if customer:
        get(op.s, op.account, "customer", customer, "customer")
    total = sum(line["amount"] for line in lines)
    session_id = new_id("cs_test_a1", 56)
    stamp = now()
    session = shape(
        "checkout.session",
        id=session_id,
        mode=mode,
        status="open",
        payment_status="unpaid",
        url=page_url(op, session_id),
        success_url=op.params["success_url"],
        cancel_url=op.params.get("cancel_url"),
        customer=customer,
        customer_email=op.params.get("customer_email"),
        client_reference_id=op.params.get("client_reference_id"),
        metadata=metadata(op),
        amount_subtotal=total,
        amount_total=total,
        currency=lines[0]["currency"],
        created=stamp,
        expires_at=stamp + 86400,
        ui_mode="hosted",
        locale=None,
        customer_creation="always" if mode == "payment" and not customer else None,
        payment_method_collection="always",
        custom_fields=[],
        shipping_options=[],
        total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
    )
    op.table("checkout.session")[session_id] = session
    # What the hosted page shows and completion needs; not part of the session object.
    op.s.setdefault("session_lines", {})[session_id] = {
        "lines": lines,
        "subscription_metadata": dict(
            (op.params.get("subscription_data") or {}).get("metadata") or {}
        ),
        "payment_metadata": dict(
            (op.params.get("payment_intent_data") or {}).get("metadata") or {}
        ),
    }
    return session


def retrieve_session(op: Op) -> dict[str, Any]:
    return get(op.s, op.account, "checkout.session", op.path["id"])


def list_sessions(op: Op) -> dict[str, Any]:
    items = list(op.table("checkout.session").values())
    if intent := op.params.get("payment_intent"):
        items = [s for s in items if s["payment_intent"] == intent]
    if sub := op.params.get("subscription"):
        items = [s for s in items if s["subscription"] == sub]
    return paginate(op, items, "/v1/checkout/sessions")


def _customer_for(op: Op, session: dict[str, Any], email: str) -> str:
    if session["customer"]:
        return str(session["customer"])
    from backend.sandbox.stripe.resources import create_customer

    sub_op = Op(op.s, op.ctx, op.account, {"email": email}, meta=op.meta)
    return str(create_customer(sub_op)["id"])


def complete_session(op: Op, session: dict[str, Any], *, fail: bool = False) -> str | None:
    """The person pressed Pay on the hosted page. Returns an error message for a declined card."""
    if session["status"] != "open":
        return f"This Checkout Session is {session['status']}."
    extra = op.s["session_lines"][session["id"]]
    email = session["customer_email"] or "buyer@sandbox.example"
    customer_id = _customer_for(op, session, email)
    method = "pm_card_chargeDeclined" if fail else "pm_card_visa"
    intent = new_intent(
        op,
        session["amount_total"],
        session["currency"],
        customer_id,
        {"metadata": extra["payment_metadata"]},
    )
    settle_intent(op, intent, method)
    if intent["status"] != "succeeded":
        return "Your card was declined. Try another card."
    update(
        session,
        customer=customer_id,
        status="complete",
        payment_status="paid",
        customer_details={
            "email": email,
            "name": None,
            "phone": None,
            "address": None,
            "tax_exempt": "none",
            "tax_ids": [],
            "business_name": None,
            "individual_name": None,
        },
    )
    if session["mode"] == "payment":
        session["payment_intent"] = intent["id"]
    else:
        subscription = _start_subscription(op, session, customer_id, extra, intent)
        session["subscription"] = subscription["id"]
        session["invoice"] = subscription["latest_invoice"]
    op.emit("checkout.session.completed", session)
    return None


def _start_subscription(
    op: Op, session: dict[str, Any], customer_id: str, extra: dict[str, Any], intent: dict[str, Any]
) -> dict[str, Any]:
    from backend.sandbox.stripe.invoicing import mark_paid

    stamp = now()
    sub_id = new_id("sub_", 24)
    items = [
        _subscription_item(op, sub_id, line["price"], line["quantity"], stamp)
        for line in extra["lines"]
        if line["recurring"]
    ]
    subscription = shape(
        "subscription",
        id=sub_id,
        customer=customer_id,
        status="active",
        created=stamp,
        start_date=stamp,
        billing_cycle_anchor=stamp,
        currency=session["currency"],
        collection_method="charge_automatically",
        cancel_at_period_end=False,
        metadata=extra["subscription_metadata"],
        items=list_object(items, f"/v1/subscription_items?subscription={sub_id}"),
        default_payment_method=intent["payment_method"],
    )
    op.table("subscription")[sub_id] = subscription
    invoice = _subscription_invoice(op, subscription, session)
    subscription["latest_invoice"] = invoice["id"]
    op.emit("customer.subscription.created", subscription)
    op.emit("invoice.created", invoice)
    invoice.update(status="open")
    invoice["status_transitions"]["finalized_at"] = stamp
    op.emit("invoice.finalized", invoice)
    mark_paid(op, invoice)
    return subscription


def _subscription_item(
    op: Op, sub_id: str, price_id: str, quantity: int, stamp: int
) -> dict[str, Any]:
    price = get(op.s, op.account, "price", price_id)
    return shape(
        "subscription_item",
        id=new_id("si_", 14),
        created=stamp,
        price=dict(price),
        quantity=quantity,
        subscription=sub_id,
        metadata={},
        discounts=[],
        tax_rates=[],
        current_period_start=stamp,
        current_period_end=stamp + MONTH,
    )


def _subscription_invoice(
    op: Op, subscription: dict[str, Any], session: dict[str, Any]
) -> dict[str, Any]:
    from backend.sandbox.stripe.invoicing import create_invoice, create_invoice_item

    invoice = create_invoice(
        Op(
            op.s,
            op.ctx,
            op.account,
            {
                "customer": subscription["customer"],
                "currency": subscription["currency"],
                "metadata": dict(subscription["metadata"]),
            },
            meta=op.meta,
        )
    )
    invoice.update(billing_reason="subscription_create", subscription=subscription["id"])
    for item in subscription["items"]["data"]:
        create_invoice_item(
            Op(
                op.s,
                op.ctx,
                op.account,
                {
                    "customer": subscription["customer"],
                    "invoice": invoice["id"],
                    "price": item["price"]["id"],
                    "quantity": item["quantity"],
                },
                meta=op.meta,
            )
        )
    invoice.update(hosted_invoice_url=None, number=f"SUB-{new_id('', 6).upper()}")
    return invoice


def retrieve_subscription(op: Op) -> dict[str, Any]:
    return get(op.s, op.account, "subscription", op.path["id"])


def list_subscriptions(op: Op) -> dict[str, Any]:
    items = list(op.table("subscription").values())
    if customer := op.params.get("customer"):
        items = [s for s in items if s["customer"] == customer]
    status = op.params.get("status")
    if status and status != "all":
        items = [s for s in items if s["status"] == status]
    elif not status:
        items = [s for s in items if s["status"] != "canceled"]
    return paginate(op, items, "/v1/subscriptions")


def update_subscription(op: Op) -> dict[str, Any]:
    subscription = retrieve_subscription(op)
    if subscription["status"] == "canceled":
        raise StripeError(
            400, "A canceled subscription can only update its cancellation_details and metadata."
        )
    previous: dict[str, Any] = {}
    if "metadata" in op.params:
        previous["metadata"] = dict(subscription["metadata"])
        subscription["metadata"] = metadata(op, subscription["metadata"])
    if "cancel_at_period_end" in op.params:
        previous["cancel_at_period_end"] = subscription["cancel_at_period_end"]
        subscription["cancel_at_period_end"] = as_bool(op.params["cancel_at_period_end"])
    if items := op.params.get("items"):
        previous["items"] = subscription["items"]
        current = {i["id"]: i for i in subscription["items"]["data"]}
        stamp = now()
        for change in items:
            if change.get("id") in current:
                target = current[change["id"]]
                if as_bool(change.get("deleted")):
                    del current[change["id"]]
                    continue
                if change.get("price"):
                    target["price"] = dict(get(op.s, op.account, "price", change["price"]))
                if change.get("quantity") is not None:
                    target["quantity"] = as_int(change["quantity"])
            elif change.get("price"):
                added = _subscription_item(
                    op,
                    subscription["id"],
                    change["price"],
                    as_int(change.get("quantity"), 1) or 1,
                    stamp,
                )
                current[added["id"]] = added
        subscription["items"] = list_object(list(current.values()), subscription["items"]["url"])
    op.emit("customer.subscription.updated", subscription, previous)
    return subscription


def cancel_subscription(op: Op) -> dict[str, Any]:
    subscription = retrieve_subscription(op)
    if subscription["status"] == "canceled":
        raise StripeError(
            400,
            f"No such subscription: '{subscription['id']}' is already canceled.",
            code="resource_missing",
        )
    stamp = now()
    previous = {"status": subscription["status"]}
    update(
        subscription,
        status="canceled",
        canceled_at=stamp,
        ended_at=stamp,
        cancellation_details={
            "comment": None,
            "feedback": None,
            "reason": "cancellation_requested",
        },
    )
    op.emit("customer.subscription.deleted", subscription, previous)
    return subscription
