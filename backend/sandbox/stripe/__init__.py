"""The Stripe emulator: the REST API (v1) the product calls through the stripe SDK, hosted
invoice and checkout pages, Connect OAuth, and events delivered to webhook endpoints.

Point the SDK here with ``StripeClient(key, base_addresses={"api": f"{sandbox}/stripe",
"connect": f"{sandbox}/stripe/connect"})``.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from backend.sandbox.context import SandboxContext, Section
from backend.sandbox.stripe.core import ensure_seeded
from backend.sandbox.stripe.pages import build_pages
from backend.sandbox.stripe.routes import build_router as _build_api
from backend.sandbox.stripe.routes import render_error as _render_error
from backend.sandbox.switches import by_api_key

NAME = "stripe"
PREFIX = "/stripe"


def render_error(status: int, kind: str, message: str) -> JSONResponse:
    return _render_error(status, kind, message)


def build_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()
    router.include_router(_build_api(ctx))
    router.include_router(build_pages(ctx))
    return router


def rate_key(ctx: SandboxContext, request: Request) -> str:
    """What Stripe's rate limit counts a request against: the account it acts on (the
    Stripe-Account a platform names, or the account its key belongs to), whichever key is used.
    An unknown key counts against itself (it is refused anyway)."""
    named = request.headers.get("stripe-account")
    if named:
        return named
    authorization = request.headers.get("authorization", "")
    credential = authorization.partition(" ")[2]
    info = ctx.store.lookup("stripe", "keys", credential) if credential else None
    return str(info["account"]) if isinstance(info, dict) else by_api_key(request)


def seed(ctx: SandboxContext) -> None:
    """The platform's and the demo workspaces' accounts, ready before the first request."""
    with ctx.store.section("stripe") as s:
        ensure_seeded(s, ctx)


def _money(amount: int, currency: str) -> str:
    return f"{amount / 100:,.2f} {currency.upper()}"


def _permissions(info: dict[str, Any]) -> str:
    if info["kind"] != "restricted":
        return ""
    granted: dict[str, str] = info.get("permissions", {})
    return ", ".join(
        f"{'everything' if resource == '*' else resource}: {access}"
        for resource, access in granted.items()
    )


def summary(ctx: SandboxContext) -> list[Section]:
    with ctx.store.section("stripe") as s:
        ensure_seeded(s, ctx)
    s = ctx.store.read("stripe")
    names = {a: info["name"] for a, info in s["accounts"].items()}
    keys = [
        [
            html.escape(names[info["account"]]),
            html.escape(info["account"]),
            info["kind"],
            f"<code>{html.escape(key)}</code>",
            html.escape(_permissions(info)),
        ]
        for key, info in s["keys"].items()
        if not info.get("revoked")
    ]
    customers, invoices, payments, sessions, subscriptions, events = [], [], [], [], [], []
    for account, objects in s["objects"].items():
        who = html.escape(names.get(account, account))
        for c in objects.get("customer", {}).values():
            customers.append(
                [
                    who,
                    c["id"],
                    html.escape(c["email"] or ""),
                    html.escape(c["name"] or ""),
                    html.escape(str(c["metadata"])),
                ]
            )
        for i in objects.get("invoice", {}).values():
            link = (
                f'<a href="{html.escape(i["hosted_invoice_url"])}">open</a>'
                if i["hosted_invoice_url"]
                else ""
            )
            invoices.append(
                [
                    who,
                    i["id"],
                    html.escape(i["number"] or ""),
                    i["customer"],
                    i["status"],
                    _money(i["amount_due"], i["currency"]),
                    link,
                ]
            )
        for ch in objects.get("charge", {}).values():
            dispute = (
                "disputed"
                if ch["disputed"]
                else f'<form method="post" action="/stripe/_sandbox/disputes" style="margin:0">'
                f'<input type="hidden" name="charge" value="{ch["id"]}">'
                '<button type="submit">Open a dispute</button></form>'
                if ch["status"] == "succeeded"
                else ""
            )
            payments.append(
                [
                    who,
                    ch["id"],
                    ch["payment_intent"] or "",
                    ch["status"],
                    _money(ch["amount"], ch["currency"]),
                    _money(ch["amount_refunded"], ch["currency"]),
                    dispute,
                ]
            )
        for cs in objects.get("checkout.session", {}).values():
            sessions.append(
                [
                    who,
                    cs["id"][:24] + "…",
                    cs["mode"],
                    cs["status"],
                    f'<a href="{html.escape(cs["url"])}">open</a>',
                ]
            )
        for sub in objects.get("subscription", {}).values():
            subscriptions.append([who, sub["id"], sub["customer"], sub["status"]])
        for e in list(objects.get("event", {}).values())[-30:]:
            events.append([who, e["id"], e["type"], str(e["pending_webhooks"])])
    return [
        Section(
            "Stripe: accounts and API keys",
            ["account", "id", "kind", "key", "restricted key's permissions"],
            keys,
            note="Paste a secret key, or a restricted key with Write on Customers, Invoices "
            "and Webhook Endpoints, into the hub's Stripe connection. Publishable and "
            "read-only keys show the errors Stripe gives.",
        ),
        Section("Stripe: customers", ["account", "id", "email", "name", "metadata"], customers),
        Section(
            "Stripe: invoices",
            ["account", "id", "number", "customer", "status", "amount due", "hosted page"],
            invoices,
        ),
        Section(
            "Stripe: payments",
            ["account", "charge", "payment intent", "status", "amount", "refunded", "dispute"],
            payments,
        ),
        Section("Stripe: checkout sessions", ["account", "id", "mode", "status", "page"], sessions),
        Section("Stripe: subscriptions", ["account", "id", "customer", "status"], subscriptions),
        Section("Stripe: recent events", ["account", "id", "type", "endpoints"], events[-50:]),
    ]
