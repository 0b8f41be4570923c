"""Fidelity to Stripe's own documents: every object the sandbox returns or sends carries its
``object`` name and only fields Stripe's published fixture for that resource has, and every
parameter it accepts is one the stripe SDK declares."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import stripe

import backend.sandbox.stripe as stripe_emulator
from backend.sandbox.stripe import core, params, routes
from backend.sandbox.stripe.objects import CONTAINER_FIELDS, fixtures
from tests.sandbox.conftest import MakeSandbox, RunningSandbox
from tests.sandbox.stripe_support import client, listen, new_account
from tests.support.servers import WebhookReceiver

# Stripe documents `secret` as returned only when an endpoint is created; the published
# fixture shows the retrieve shape, without it.
CREATE_ONLY_FIELDS = {"webhook_endpoint": {"secret"}}


def unknown_fields(value: Any, where: str = "$") -> list[str]:
    """Every place where an object has a field its resource's fixture does not."""
    problems: list[str] = []
    if isinstance(value, list):
        for index, item in enumerate(value):
            problems += unknown_fields(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        name = value.get("object")
        if isinstance(name, str):
            if name in CONTAINER_FIELDS:
                allowed = CONTAINER_FIELDS[name]
            elif value.get("deleted") is True and f"deleted_{name}" in fixtures():
                allowed = set(fixtures()[f"deleted_{name}"])
            elif name in fixtures():
                allowed = set(fixtures()[name]) | CREATE_ONLY_FIELDS.get(name, set())
            else:
                return [f"{where}: object {name!r} is not a resource in Stripe's fixtures"]
            extra = set(value) - allowed
            if extra:
                problems.append(f"{where} ({name}): {sorted(extra)}")
        for key, inner in value.items():
            problems += unknown_fields(inner, f"{where}.{key}")
    return problems


def test_the_checker_catches_an_invented_field() -> None:
    good = {"object": "customer", "id": "cus_1", "email": None}
    assert unknown_fields(good) == []
    assert unknown_fields({"object": "list", "data": [{**good, "favourite": 1}]}) == [
        "$.data[0] (customer): ['favourite']"
    ]
    assert unknown_fields({"object": "gadget"})


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[stripe_emulator])


def _scenario(sandbox: RunningSandbox, receiver: WebhookReceiver) -> list[Any]:
    """Touch every resource the sandbox serves; return every raw response body."""
    bodies: list[Any] = []

    def keep(obj: Any) -> Any:
        bodies.append(json.loads(obj.last_response.body))
        return obj

    sdk = client(sandbox.url, new_account(sandbox.url)["secret_key"])
    keep(listen(sdk, receiver) and sdk.v1.webhook_endpoints.list())
    keep(sdk.v1.accounts.retrieve_current())
    customer = keep(sdk.v1.customers.create({"email": "f@example.com", "metadata": {"k": "v"}}))
    keep(sdk.v1.customers.update(customer.id, {"name": "F"}))
    keep(sdk.v1.customers.retrieve(customer.id))
    keep(sdk.v1.customers.list())
    keep(sdk.v1.customers.search({"query": "metadata['k']:'v'"}))
    product = keep(sdk.v1.products.create({"name": "Scarf"}))
    keep(sdk.v1.products.retrieve(product.id))
    price = keep(
        sdk.v1.prices.create({"product": product.id, "currency": "usd", "unit_amount": 800})
    )
    keep(sdk.v1.prices.list({"product": product.id}))
    invoice = keep(
        sdk.v1.invoices.create(
            {"customer": customer.id, "collection_method": "send_invoice", "days_until_due": 3}
        )
    )
    keep(
        sdk.v1.invoice_items.create(
            {
                "customer": customer.id,
                "invoice": invoice.id,
                "pricing": {"price": price.id},
                "quantity": 2,
            }
        )
    )
    keep(sdk.v1.invoices.add_lines(invoice.id, {"lines": [{"amount": 100, "description": "Ship"}]}))
    keep(sdk.v1.invoices.update(invoice.id, {"metadata": {"show": "1"}}))
    keep(sdk.v1.invoices.finalize_invoice(invoice.id))
    keep(sdk.v1.invoices.send_invoice(invoice.id))
    keep(sdk.v1.invoices.line_items.list(invoice.id))
    keep(sdk.v1.invoices.pay(invoice.id, {"payment_method": "pm_card_visa"}))
    keep(sdk.v1.invoices.search({"query": "status:'paid'"}))
    other = keep(sdk.v1.invoices.create({"customer": customer.id}))
    keep(
        sdk.v1.invoice_items.create(
            {"customer": customer.id, "invoice": other.id, "amount": 500, "currency": "usd"}
        )
    )
    keep(sdk.v1.invoices.finalize_invoice(other.id))
    keep(sdk.v1.invoices.void_invoice(other.id))
    intent = keep(
        sdk.v1.payment_intents.create({"amount": 900, "currency": "usd", "customer": customer.id})
    )
    keep(sdk.v1.payment_intents.confirm(intent.id, {"payment_method": "pm_card_visa"}))
    keep(sdk.v1.payment_intents.retrieve(intent.id))
    charges = keep(sdk.v1.charges.list({"customer": customer.id}))
    keep(sdk.v1.charges.retrieve(charges.data[0].id))
    keep(sdk.v1.refunds.create({"charge": charges.data[0].id, "amount": 100}))
    httpx.post(f"{sandbox.url}/stripe/_sandbox/disputes", json={"charge": charges.data[0].id})
    disputes = keep(sdk.v1.disputes.list())
    keep(sdk.v1.disputes.retrieve(disputes.data[0].id))
    recurring = keep(
        sdk.v1.prices.create(
            {
                "currency": "usd",
                "unit_amount": 2900,
                "recurring": {"interval": "month"},
                "product_data": {"name": "Pro"},
            }
        )
    )
    session = keep(
        sdk.v1.checkout.sessions.create(
            {
                "mode": "subscription",
                "success_url": "https://x.example/ok",
                "line_items": [{"price": recurring.id, "quantity": 1}],
            }
        )
    )
    assert session.url
    httpx.post(session.url + "/pay")
    done = keep(sdk.v1.checkout.sessions.retrieve(session.id))
    keep(sdk.v1.checkout.sessions.list())
    keep(sdk.v1.subscriptions.update(str(done.subscription), {"metadata": {"a": "b"}}))
    keep(sdk.v1.subscriptions.list())
    keep(sdk.v1.subscriptions.cancel(str(done.subscription)))
    endpoint = sdk.v1.webhook_endpoints.create(
        {"url": "https://x.example/h", "enabled_events": ["invoice.paid"]}
    )
    keep(endpoint)
    keep(sdk.v1.webhook_endpoints.delete(endpoint.id))
    for failing in (
        lambda: sdk.v1.customers.retrieve("cus_nope"),
        lambda: sdk.v1.invoices.pay(invoice.id),
    ):
        with pytest.raises(stripe.StripeError) as caught:
            failing()
        assert set((caught.value.json_body or {})["error"]) >= {"type", "code", "message", "param"}
    return bodies


def test_every_returned_and_delivered_object_matches_stripes_fixture(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    bodies = _scenario(sandbox, receiver)
    seen_objects = {b.get("object") for b in bodies}
    assert {
        "customer",
        "invoice",
        "invoiceitem",
        "payment_intent",
        "charge",
        "refund",
        "dispute",
        "checkout.session",
        "subscription",
        "webhook_endpoint",
        "account",
        "price",
        "product",
        "list",
        "search_result",
    } <= seen_objects
    problems = [p for body in bodies for p in unknown_fields(body)]
    events = [json.loads(r.body) for r in receiver.wait_for(30)]
    assert {e["object"] for e in events} == {"event"}
    problems += [p for event in events for p in unknown_fields(event)]
    assert problems == []


def test_every_route_names_a_parameter_type_the_sdk_declares() -> None:
    for method, path, type_name, *_ in routes.ROUTES:
        declared = params._typed_dict(type_name)
        assert hasattr(declared, "__optional_keys__"), f"{method} {path}: {type_name}"


def test_nested_unknown_parameters_are_refused(sandbox: RunningSandbox) -> None:
    sdk = client(sandbox.url, core.DEMO_SECRET_KEY)
    customer = sdk.v1.customers.create({})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.invoices.create(
            {"customer": customer.id, "automatic_tax": {"enabled": False, "colour": "x"}}
        )  # type: ignore[typeddict-unknown-key]
    assert caught.value.param == "automatic_tax[colour]"
