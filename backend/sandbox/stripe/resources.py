"""Customers, products, prices, webhook endpoints, the account, payment intents, charges,
refunds and disputes.

Tested in tests/sandbox/test_stripe.py and tests/sandbox/test_stripe_fidelity.py (through the
official stripe SDK)."""

from __future__ import annotations

from typing import Any

from backend.sandbox.store import new_id, now
from backend.sandbox.stripe.core import StripeError, add_webhook_endpoint, get
from backend.sandbox.stripe.formdata import as_bool, as_int
from backend.sandbox.stripe.objects import fixtures, shape, update
from backend.sandbox.stripe.op import Op, metadata, paginate, search

# Test cards, by the PaymentMethod ids Stripe's docs give for them.
FAILING_PAYMENT_METHODS = {
    "pm_card_chargeDeclined",
    "pm_card_visa_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds",
}


# -- customers ------------------------------------------------------------------------------


def create_customer(op: Op) -> dict[str, Any]:
    customer = shape(
        "customer",
        id=new_id("cus_", 14),
        created=now(),
        email=op.params.get("email"),
        name=op.params.get("name"),
        phone=op.params.get("phone"),
        description=op.params.get("description"),
        metadata=metadata(op),
        balance=0,
        delinquent=False,
        invoice_prefix=new_id("", 8).upper(),
        next_invoice_sequence=1,
        preferred_locales=list(op.params.get("preferred_locales") or []),
        invoice_settings=fixtures()["customer"]["invoice_settings"],
    )
    op.table("customer")[customer["id"]] = customer
    op.emit("customer.created", customer)
    return customer


def retrieve_customer(op: Op) -> dict[str, Any]:
    return get(op.s, op.account, "customer", op.path["id"])


def update_customer(op: Op) -> dict[str, Any]:
    customer = retrieve_customer(op)
    previous: dict[str, Any] = {
        k: customer[k]
        for k in ("email", "name", "phone", "description", "metadata")
        if k in op.params
    }
    for key in ("email", "name", "phone", "description"):
        if key in op.params:
            customer[key] = op.params[key] or None
    customer["metadata"] = metadata(op, customer["metadata"])
    op.emit("customer.updated", customer, previous)
    return customer


def list_customers(op: Op) -> dict[str, Any]:
    items = list(op.table("customer").values())
    if email := op.params.get("email"):
        items = [c for c in items if (c["email"] or "").lower() == email.lower()]
    return paginate(op, items, "/v1/customers")


def search_customers(op: Op) -> dict[str, Any]:
    return search(op, list(op.table("customer").values()), "/v1/customers/search")


# -- products and prices --------------------------------------------------------------------


def _new_product(op: Op, name: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    product = shape(
        "product",
        id=new_id("prod_", 14),
        name=name,
        active=True,
        created=now(),
        updated=now(),
        description=(extra or {}).get("description"),
        metadata=dict((extra or {}).get("metadata") or {}),
        images=[],
        marketing_features=[],
        type="service",
    )
    op.table("product")[product["id"]] = product
    return product


def create_product(op: Op) -> dict[str, Any]:
    product = _new_product(op, op.require("name"), op.params)
    op.emit("product.created", product)
    return product


def _new_price(op: Op, data: dict[str, Any], product_id: str) -> dict[str, Any]:
    recurring = data.get("recurring")
    unit = as_int(data.get("unit_amount"))
    if unit is None and data.get("unit_amount_decimal") is not None:
        unit = int(float(data["unit_amount_decimal"]))
    if unit is None:
        raise StripeError(
            400,
            "Missing required param: unit_amount.",
            code="parameter_missing",
            param="unit_amount",
        )
    price = shape(
        "price",
        id=new_id("price_", 24),
        active=True,
        billing_scheme="per_unit",
        created=now(),
        currency=str(data.get("currency") or "usd").lower(),
        product=product_id,
        unit_amount=unit,
        unit_amount_decimal=str(unit),
        lookup_key=data.get("lookup_key"),
        nickname=data.get("nickname"),
        metadata=dict(data.get("metadata") or {}),
        tax_behavior="unspecified",
        type="recurring" if recurring else "one_time",
        recurring=None
        if not recurring
        else {
            "interval": recurring.get("interval", "month"),
            "interval_count": as_int(recurring.get("interval_count"), 1),
            "meter": None,
            "usage_type": "licensed",
            "trial_period_days": None,
        },
    )
    op.table("price")[price["id"]] = price
    return price


def price_from(op: Op, data: dict[str, Any]) -> dict[str, Any]:
    """A price given inline (``price_data``) or by id (``price``)."""
    if price_id := data.get("price"):
        return get(op.s, op.account, "price", price_id, "price")
    inline = data.get("price_data")
    if not inline:
        raise StripeError(
            400,
            "You must specify either `price` or `price_data`.",
            code="parameter_missing",
            param="price",
        )
    product_id = inline.get("product")
    if product_id is None:
        product_data = inline.get("product_data") or {}
        product_id = _new_product(op, product_data.get("name") or "Item", product_data)["id"]
    else:
        get(op.s, op.account, "product", product_id, "product")
    return _new_price(op, inline, product_id)


def create_price(op: Op) -> dict[str, Any]:
    if "product" in op.params:
        get(op.s, op.account, "product", op.params["product"], "product")
        product_id = op.params["product"]
    else:
        data = op.params.get("product_data") or {}
        product_id = _new_product(op, data.get("name") or "Item", data)["id"]
    price = _new_price(op, op.params, product_id)
    op.emit("price.created", price)
    return price


def retrieve_price(op: Op) -> dict[str, Any]:
    return get(op.s, op.account, "price", op.path["id"])


def list_prices(op: Op) -> dict[str, Any]:
    items = list(op.table("price").values())
    if keys := op.params.get("lookup_keys"):
        items = [p for p in items if p["lookup_key"] in keys]
    if product := op.params.get("product"):
        items = [p for p in items if p["product"] == product]
    return paginate(op, items, "/v1/prices")


def retrieve_product(op: Op) -> dict[str, Any]:
    return get(op.s, op.account, "product", op.path["id"])


# -- webhook endpoints and the account ------------------------------------------------------


def create_webhook_endpoint(op: Op) -> dict[str, Any]:
    events = op.require("enabled_events")
    endpoint = add_webhook_endpoint(
        op.s,
        op.account,
        op.require("url"),
        list(events),
        description=op.params.get("description"),
        metadata=op.params.get("metadata"),
    )
    # Only the create response carries the secret (Stripe documents `secret` as create-only).
    return {**endpoint, "secret": op.s["endpoint_secrets"][endpoint["id"]]}


def list_webhook_endpoints(op: Op) -> dict[str, Any]:
    return paginate(op, list(op.table("webhook_endpoint").values()), "/v1/webhook_endpoints")


def delete_webhook_endpoint(op: Op) -> dict[str, Any]:
    endpoint = get(op.s, op.account, "webhook_endpoint", op.path["id"])
    del op.table("webhook_endpoint")[endpoint["id"]]
    return {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}


def retrieve_account(op: Op) -> dict[str, Any]:
    info = op.s["accounts"][op.account]
    profile = dict(fixtures()["account"]["business_profile"])
    profile.update(name=info["name"], support_email=info["email"])
    return shape(
        "account",
        id=info["id"],
        email=info["email"],
        country=info["country"],
        default_currency=info["currency"],
        charges_enabled=True,
        payouts_enabled=True,
        details_submitted=True,
        created=info["created"],
        business_profile=profile,
        type="standard",
    )


# -- payment intents, charges, refunds, disputes --------------------------------------------


def _card_details() -> dict[str, Any]:
    return {
        "type": "card",
        "card": {
            "brand": "visa",
            "last4": "4242",
            "exp_month": 12,
            "exp_year": 2030,
            "country": "US",
            "funding": "credit",
        },
    }


def new_charge(op: Op, intent: dict[str, Any], *, succeeded: bool) -> dict[str, Any]:
    charge = shape(
        "charge",
        id=new_id("ch_", 24),
        amount=intent["amount"],
        amount_captured=intent["amount"] if succeeded else 0,
        amount_refunded=0,
        captured=succeeded,
        paid=succeeded,
        refunded=False,
        disputed=False,
        created=now(),
        currency=intent["currency"],
        customer=intent["customer"],
        payment_intent=intent["id"],
        description=intent["description"],
        metadata=dict(intent["metadata"]),
        status="succeeded" if succeeded else "failed",
        failure_code=None if succeeded else "card_declined",
        failure_message=None if succeeded else "Your card was declined.",
        payment_method=intent["payment_method"],
        payment_method_details=_card_details(),
        receipt_url=f"{op.ctx.public_url}/stripe/_pages/receipt/{op.account}/{intent['id']}",
        outcome={
            "network_status": "approved_by_network" if succeeded else "declined_by_network",
            "reason": None if succeeded else "generic_decline",
            "risk_level": "normal",
            "seller_message": "Payment complete." if succeeded else "The bank declined.",
            "type": "authorized" if succeeded else "issuer_declined",
        },
        billing_details=fixtures()["charge"]["billing_details"] | {"name": None},
        fraud_details={},
    )
    op.table("charge")[charge["id"]] = charge
    return charge


def new_intent(
    op: Op, amount: int, currency: str, customer: str | None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    extra = extra or {}
    intent_id = new_id("pi_", 24)
    intent = shape(
        "payment_intent",
        id=intent_id,
        amount=amount,
        currency=currency.lower(),
        customer=customer,
        description=extra.get("description"),
        metadata=dict(extra.get("metadata") or {}),
        created=now(),
        status="requires_payment_method",
        amount_capturable=0,
        amount_received=0,
        capture_method="automatic",
        confirmation_method="automatic",
        client_secret=f"{intent_id}_secret_{new_id('', 25)}",
        payment_method_types=list(extra.get("payment_method_types") or ["card"]),
        receipt_email=extra.get("receipt_email"),
    )
    op.table("payment_intent")[intent_id] = intent
    return intent


def settle_intent(op: Op, intent: dict[str, Any], payment_method: str) -> dict[str, Any]:
    """Charge the card; returns the charge. A declined card leaves the intent retryable."""
    succeeded = payment_method not in FAILING_PAYMENT_METHODS
    intent["payment_method"] = payment_method
    charge = new_charge(op, intent, succeeded=succeeded)
    intent["latest_charge"] = charge["id"]
    if succeeded:
        update(
            intent, status="succeeded", amount_received=intent["amount"], last_payment_error=None
        )
        op.emit("charge.succeeded", charge)
        op.emit("payment_intent.succeeded", intent)
    else:
        update(
            intent,
            status="requires_payment_method",
            last_payment_error={
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "generic_decline",
                "message": "Your card was declined.",
                "charge": charge["id"],
            },
        )
        op.emit("charge.failed", charge)
        op.emit("payment_intent.payment_failed", intent)
    return charge


def card_declined(intent: dict[str, Any], charge: dict[str, Any]) -> StripeError:
    return StripeError(
        402,
        "Your card was declined.",
        type="card_error",
        code="card_declined",
        extra={"decline_code": "generic_decline", "charge": charge["id"], "payment_intent": intent},
    )


def create_payment_intent(op: Op) -> dict[str, Any]:
    amount = as_int(op.require("amount")) or 0
    if amount < 50:
        raise StripeError(
            400, "Amount must be at least $0.50 usd", code="amount_too_small", param="amount"
        )
    customer = op.params.get("customer")
    if customer:
        get(op.s, op.account, "customer", customer, "customer")
    intent = new_intent(op, amount, op.require("currency"), customer, op.params)
    op.emit("payment_intent.created", intent)
    if op.params.get("payment_method"):
        intent.update(status="requires_confirmation", payment_method=op.params["payment_method"])
    if as_bool(op.params.get("confirm")):
        return _confirm(op, intent)
    return intent


def _confirm(op: Op, intent: dict[str, Any]) -> dict[str, Any]:
    if intent["status"] == "succeeded":
        raise StripeError(
            400,
            "This PaymentIntent's payment_method could not be updated because "
            "it has a status of succeeded.",
            code="payment_intent_unexpected_state",
        )
    method = op.params.get("payment_method") or intent["payment_method"]
    if not method:
        raise StripeError(
            400,
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            code="payment_intent_unexpected_state",
        )
    charge = settle_intent(op, intent, method)
    if intent["status"] != "succeeded":
        raise card_declined(intent, charge)
    return intent


def confirm_payment_intent(op: Op) -> dict[str, Any]:
    return _confirm(op, get(op.s, op.account, "payment_intent", op.path["id"]))


def retrieve_payment_intent(op: Op) -> dict[str, Any]:
    return get(op.s, op.account, "payment_intent", op.path["id"])


def retrieve_charge(op: Op) -> dict[str, Any]:
    return get(op.s, op.account, "charge", op.path["id"])


def list_charges(op: Op) -> dict[str, Any]:
    items = list(op.table("charge").values())
    if customer := op.params.get("customer"):
        items = [c for c in items if c["customer"] == customer]
    if intent := op.params.get("payment_intent"):
        items = [c for c in items if c["payment_intent"] == intent]
    return paginate(op, items, "/v1/charges")


def create_refund(op: Op) -> dict[str, Any]:
    if charge_id := op.params.get("charge"):
        charge = get(op.s, op.account, "charge", charge_id, "charge")
    elif intent_id := op.params.get("payment_intent"):
        intent = get(op.s, op.account, "payment_intent", intent_id, "payment_intent")
        if not intent["latest_charge"]:
            raise StripeError(
                400,
                f"PaymentIntent {intent_id} has no successful charge to refund.",
                param="payment_intent",
            )
        charge = get(op.s, op.account, "charge", intent["latest_charge"])
    else:
        raise StripeError(
            400,
            "One of `charge` or `payment_intent` is required.",
            code="parameter_missing",
            param="charge",
        )
    remaining = charge["amount_captured"] - charge["amount_refunded"]
    amount = as_int(op.params.get("amount"), remaining) or 0
    if charge["status"] != "succeeded" or amount <= 0 or amount > remaining:
        raise StripeError(
            400,
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
            code="amount_too_large",
            param="amount",
        )
    refund = shape(
        "refund",
        id=new_id("re_", 24),
        amount=amount,
        charge=charge["id"],
        created=now(),
        currency=charge["currency"],
        payment_intent=charge["payment_intent"],
        reason=op.params.get("reason"),
        status="succeeded",
        metadata=metadata(op),
        customer=charge["customer"],
    )
    op.table("refund")[refund["id"]] = refund
    previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
    op.emit("refund.created", refund)
    op.emit("charge.refunded", charge, previous)
    return refund


def open_dispute(op: Op, charge_id: str, reason: str = "fraudulent") -> dict[str, Any]:
    charge = get(op.s, op.account, "charge", charge_id, "charge")
    if charge["status"] != "succeeded":
        raise StripeError(400, f"Charge {charge_id} did not succeed; there is nothing to dispute.")
    dispute = shape(
        "dispute",
        id=new_id("dp_", 24),
        amount=charge["amount"],
        charge=charge["id"],
        created=now(),
        currency=charge["currency"],
        payment_intent=charge["payment_intent"],
        reason=reason,
        status="needs_response",
        is_charge_refundable=False,
        metadata={},
        evidence=fixtures()["dispute"]["evidence"],
        evidence_details={
            "due_by": now() + 7 * 86400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
            "enhanced_eligibility": {},
        },
    )
    op.table("dispute")[dispute["id"]] = dispute
    charge["disputed"] = True
    op.emit("charge.dispute.created", dispute)
    return dispute


def retrieve_dispute(op: Op) -> dict[str, Any]:
    return get(op.s, op.account, "dispute", op.path["id"])


def list_disputes(op: Op) -> dict[str, Any]:
    return paginate(op, list(op.table("dispute").values()), "/v1/disputes")
