"""Stripe's REST surface: one table of (method, path, SDK parameter type, permission, handler)
and one dispatcher that does what Stripe does around every call: authenticate, check the
parameters, honour the Idempotency-Key, and answer errors in Stripe's shape.

Tested in tests/sandbox/test_stripe.py and tests/sandbox/test_stripe_fidelity.py (through the
official stripe SDK)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from backend.sandbox.context import SandboxContext
from backend.sandbox.store import new_id
from backend.sandbox.stripe import checkout, invoicing, payments, resources
from backend.sandbox.stripe.core import (
    RequestMeta,
    StripeError,
    authenticate,
    authorize,
    ensure_seeded,
    fingerprint,
)
from backend.sandbox.stripe.formdata import decode
from backend.sandbox.stripe.op import Op
from backend.sandbox.stripe.params import UnknownParameter, validate

Handler = Callable[[Op], dict[str, Any]]

# (method, path pattern, SDK params type, permission resource, access, handler)
ROUTES: list[tuple[str, str, str, str, str, Handler]] = [
    (
        "GET",
        "/v1/account",
        "AccountRetrieveCurrentParams",
        "account",
        "read",
        resources.retrieve_account,
    ),
    (
        "POST",
        "/v1/customers",
        "CustomerCreateParams",
        "customers",
        "write",
        resources.create_customer,
    ),
    (
        "GET",
        "/v1/customers/search",
        "CustomerSearchParams",
        "customers",
        "read",
        resources.search_customers,
    ),
    (
        "GET",
        "/v1/customers/{id}",
        "CustomerRetrieveParams",
        "customers",
        "read",
        resources.retrieve_customer,
    ),
    (
        "POST",
        "/v1/customers/{id}",
        "CustomerUpdateParams",
        "customers",
        "write",
        resources.update_customer,
    ),
    ("GET", "/v1/customers", "CustomerListParams", "customers", "read", resources.list_customers),
    ("POST", "/v1/products", "ProductCreateParams", "products", "write", resources.create_product),
    (
        "GET",
        "/v1/products/{id}",
        "ProductRetrieveParams",
        "products",
        "read",
        resources.retrieve_product,
    ),
    ("POST", "/v1/prices", "PriceCreateParams", "prices", "write", resources.create_price),
    ("GET", "/v1/prices/{id}", "PriceRetrieveParams", "prices", "read", resources.retrieve_price),
    ("GET", "/v1/prices", "PriceListParams", "prices", "read", resources.list_prices),
    (
        "POST",
        "/v1/invoiceitems",
        "InvoiceItemCreateParams",
        "invoices",
        "write",
        invoicing.create_invoice_item,
    ),
    ("POST", "/v1/invoices", "InvoiceCreateParams", "invoices", "write", invoicing.create_invoice),
    (
        "GET",
        "/v1/invoices/search",
        "InvoiceSearchParams",
        "invoices",
        "read",
        invoicing.search_invoices,
    ),
    (
        "GET",
        "/v1/invoices/{id}/lines",
        "InvoiceLineItemListParams",
        "invoices",
        "read",
        invoicing.list_lines,
    ),
    (
        "GET",
        "/v1/invoices/{id}",
        "InvoiceRetrieveParams",
        "invoices",
        "read",
        invoicing.retrieve_invoice,
    ),
    (
        "POST",
        "/v1/invoices/{id}",
        "InvoiceUpdateParams",
        "invoices",
        "write",
        invoicing.update_invoice,
    ),
    ("GET", "/v1/invoices", "InvoiceListParams", "invoices", "read", invoicing.list_invoices),
    (
        "POST",
        "/v1/invoices/{id}/add_lines",
        "InvoiceAddLinesParams",
        "invoices",
        "write",
        invoicing.add_lines,
    ),
    (
        "POST",
        "/v1/invoices/{id}/finalize",
        "InvoiceFinalizeInvoiceParams",
        "invoices",
        "write",
        invoicing.finalize_invoice,
    ),
    (
        "POST",
        "/v1/invoices/{id}/send",
        "InvoiceSendInvoiceParams",
        "invoices",
        "write",
        invoicing.send_invoice,
    ),
    (
        "POST",
        "/v1/invoices/{id}/pay",
        "InvoicePayParams",
        "invoices",
        "write",
        invoicing.pay_invoice,
    ),
    (
        "POST",
        "/v1/invoices/{id}/void",
        "InvoiceVoidInvoiceParams",
        "invoices",
        "write",
        invoicing.void_invoice,
    ),
    (
        "POST",
        "/v1/invoices/{id}/mark_uncollectible",
        "InvoiceMarkUncollectibleParams",
        "invoices",
        "write",
        invoicing.mark_uncollectible,
    ),
    (
        "POST",
        "/v1/payment_intents",
        "PaymentIntentCreateParams",
        "payment_intents",
        "write",
        payments.create_payment_intent,
    ),
    (
        "GET",
        "/v1/payment_intents/{id}",
        "PaymentIntentRetrieveParams",
        "payment_intents",
        "read",
        payments.retrieve_payment_intent,
    ),
    (
        "POST",
        "/v1/payment_intents/{id}/confirm",
        "PaymentIntentConfirmParams",
        "payment_intents",
        "write",
        payments.confirm_payment_intent,
    ),
    (
        "GET",
        "/v1/charges/{id}",
        "ChargeRetrieveParams",
        "charges",
        "read",
        payments.retrieve_charge,
    ),
    ("GET", "/v1/charges", "ChargeListParams", "charges", "read", payments.list_charges),
    ("POST", "/v1/refunds", "RefundCreateParams", "refunds", "write", payments.create_refund),
    (
        "GET",
        "/v1/disputes/{id}",
        "DisputeRetrieveParams",
        "disputes",
        "read",
        payments.retrieve_dispute,
    ),
    ("GET", "/v1/disputes", "DisputeListParams", "disputes", "read", payments.list_disputes),
    (
        "POST",
        "/v1/checkout/sessions",
        "SessionCreateParams",
        "checkout_sessions",
        "write",
        checkout.create_session,
    ),
    (
        "GET",
        "/v1/checkout/sessions/{id}",
        "SessionRetrieveParams",
        "checkout_sessions",
        "read",
        checkout.retrieve_session,
    ),
    (
        "GET",
        "/v1/checkout/sessions",
        "SessionListParams",
        "checkout_sessions",
        "read",
        checkout.list_sessions,
    ),
    (
        "GET",
        "/v1/subscriptions/{id}",
        "SubscriptionRetrieveParams",
        "subscriptions",
        "read",
        checkout.retrieve_subscription,
    ),
    (
        "POST",
        "/v1/subscriptions/{id}",
        "SubscriptionUpdateParams",
        "subscriptions",
        "write",
        checkout.update_subscription,
    ),
    (
        "DELETE",
        "/v1/subscriptions/{id}",
        "SubscriptionCancelParams",
        "subscriptions",
        "write",
        checkout.cancel_subscription,
    ),
    (
        "GET",
        "/v1/subscriptions",
        "SubscriptionListParams",
        "subscriptions",
        "read",
        checkout.list_subscriptions,
    ),
    (
        "POST",
        "/v1/webhook_endpoints",
        "WebhookEndpointCreateParams",
        "webhook_endpoints",
        "write",
        resources.create_webhook_endpoint,
    ),
    (
        "GET",
        "/v1/webhook_endpoints",
        "WebhookEndpointListParams",
        "webhook_endpoints",
        "read",
        resources.list_webhook_endpoints,
    ),
    (
        "DELETE",
        "/v1/webhook_endpoints/{id}",
        "WebhookEndpointDeleteParams",
        "webhook_endpoints",
        "write",
        resources.delete_webhook_endpoint,
    ),
]

_COMPILED: list[tuple[str, re.Pattern[str], str, str, str, Handler]] = [
    (
        method,
        re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"),
        type_name,
        resource,
        access,
        handler,
    )
    for method, path, type_name, resource, access, handler in ROUTES
]


# How long Stripe keeps an idempotency key's first result (24 hours, then the key is new again).
IDEMPOTENCY_SECONDS = 24 * 3600


def _expired(stored: dict[str, Any], now: float) -> bool:
    # A key saved before keys had a time (an older state file) counts as old.
    return now - float(stored.get("at") or 0) >= IDEMPOTENCY_SECONDS


def render_error(status: int, kind: str, message: str) -> JSONResponse:
    error = StripeError(
        status,
        message,
        type="api_error" if status >= 500 else "invalid_request_error",
        code="rate_limit" if status == 429 else None,
    )
    if status == 429:
        error.type = "invalid_request_error"
    return JSONResponse(error.body(), status_code=status)


def _respond(
    status: int, body: dict[str, Any], request_id: str, replayed: bool = False
) -> JSONResponse:
    headers = {"Request-Id": request_id, "Stripe-Version": "2025-09-30.clover"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=status, headers=headers)


def build_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()

    @router.api_route("/v1/{rest:path}", methods=["GET", "POST", "DELETE"], include_in_schema=False)
    async def dispatch(rest: str, request: Request) -> JSONResponse:
        path = "/v1/" + rest
        method = request.method
        request_id = new_id("req_", 14)
        if method == "POST":
            raw = (await request.body()).decode()
            params = decode(parse_qsl(raw, keep_blank_values=True))
        else:
            params = decode(list(request.query_params.multi_items()))
        idempotency_key = request.headers.get("idempotency-key") if method == "POST" else None
        meta = RequestMeta(request_id, idempotency_key)
        with ctx.store.section("stripe") as s:
            ensure_seeded(s, ctx)
            try:
                caller = authenticate(
                    s,
                    request.headers.get("authorization", ""),
                    request.headers.get("stripe-account"),
                )
                route = next(
                    ((r, m) for r in _COMPILED if r[0] == method and (m := r[1].match(path))), None
                )
                if route is None:
                    raise StripeError(
                        404,
                        f"Unrecognized request URL ({method}: {path}). "
                        "Please see https://stripe.com/docs or we can help at "
                        "https://support.stripe.com/.",
                    )
                (_, _, type_name, resource, access, handler), match = route
                authorize(caller, resource, access)
                try:
                    validate(type_name, params)
                except UnknownParameter as exc:
                    raise StripeError(
                        400, str(exc), code="parameter_unknown", param=exc.path
                    ) from None
                replay_key = f"{caller.account}|{idempotency_key}" if idempotency_key else None
                if replay_key:
                    print_ = fingerprint(method, path, params)
                    stored = s["idempotency"].get(replay_key)
                    if stored is not None and _expired(stored, ctx.switches.now()):
                        # Stripe forgets a key 24 hours after its first use: the same key
                        # then runs the request again, as a new one.
                        del s["idempotency"][replay_key]
                        stored = None
                    if stored is not None:
                        if stored["fingerprint"] != print_:
                            raise StripeError(
                                400,
                                "Keys for idempotent requests can only be used with the same "
                                "parameters they were first used with. Try using a key other "
                                f"than '{idempotency_key}' if you meant to execute a different "
                                "request.",
                                type="idempotency_error",
                            )
                        return _respond(stored["status"], stored["body"], request_id, True)
                op = Op(s, ctx, caller.account, params, match.groupdict(), meta)
                try:
                    status, body = 200, handler(op)
                except StripeError as exc:
                    status, body = exc.status, exc.body()
                if replay_key and status < 500:
                    # Stripe saves the first result, failures included, for 24 hours.
                    s["idempotency"][replay_key] = {
                        "fingerprint": print_,
                        "status": status,
                        "body": body,
                        "at": ctx.switches.now(),
                    }
                return _respond(status, body, request_id)
            except StripeError as exc:
                return _respond(exc.status, exc.body(), request_id)

    return router
