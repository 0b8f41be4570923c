"""Customers, products, prices, webhook endpoints and the account (payments are in payments.py).

Tested in tests/sandbox/test_stripe.py and tests/sandbox/test_stripe_fidelity.py (through the
official stripe SDK)."""

from __future__ import annotations

from typing import Any

from backend.sandbox.store import new_id, now
from backend.sandbox.stripe.core import StripeError, add_webhook_endpoint, get
from backend.sandbox.stripe.formdata import as_int
from backend.sandbox.stripe.objects import fixtures, shape
from backend.sandbox.stripe.op import Op, metadata, paginate, search

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
