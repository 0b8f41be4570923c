"""What people see and click: the hosted invoice page and the Checkout page (Pay, Pay with a card
that fails, Cancel), Stripe Connect's OAuth pages and token endpoints, and the sandbox's own
helpers (new test accounts, disputes).

Tested in tests/sandbox/test_stripe.py and tests/sandbox/test_stripe_fidelity.py (through the
official stripe SDK)."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from backend.sandbox.context import SandboxContext
from backend.sandbox.store import new_id
from backend.sandbox.stripe import checkout, invoicing, payments
from backend.sandbox.stripe.core import (
    StripeError,
    add_account,
    authenticate,
    ensure_seeded,
)
from backend.sandbox.stripe.op import Op


def _money(amount: int, currency: str) -> str:
    return f"{amount / 100:,.2f} {currency.upper()}"


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(title)}</title><style>
body {{ font: 15px system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; color: #1a1f36; }}
table {{ width: 100%; border-collapse: collapse; }} td {{ padding: 6px 0; }}
.total {{ font-weight: 600; border-top: 1px solid #e3e8ee; }}
button {{ padding: 10px 18px; margin: 6px 6px 0 0; border-radius: 6px; border: 0;
  background: #635bff; color: #fff; font-size: 15px; cursor: pointer; }}
button.secondary {{ background: #e3e8ee; color: #1a1f36; }}
.badge {{ padding: 2px 8px; border-radius: 4px; background: #e3e8ee; }}
.error {{ color: #df1b41; }} .muted {{ color: #697386; font-size: 13px; }}
</style></head><body><p class="muted">Stripe sandbox · test mode</p>{body}</body></html>""")


def _form(action: str, label: str, test_id: str, secondary: bool = False) -> str:
    css = ' class="secondary"' if secondary else ""
    return (
        f'<form method="post" action="{html.escape(action)}" style="display:inline">'
        f'<button{css} type="submit" data-testid="{test_id}">{html.escape(label)}</button>'
        "</form>"
    )


def build_pages(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()

    def op_for(s: dict[str, Any], account: str) -> Op:
        if account not in s["accounts"]:
            raise StripeError(404, f"No such account: '{account}'")
        return Op(s, ctx, account, {})

    # -- hosted invoice page -------------------------------------------------------------
    @router.get("/_pages/invoice/{account}/{invoice_id}", response_class=HTMLResponse)
    def invoice_page(account: str, invoice_id: str, error: str = "") -> Response:
        with ctx.store.section("stripe") as s:
            ensure_seeded(s, ctx)
            invoice = s["objects"].get(account, {}).get("invoice", {}).get(invoice_id)
            if invoice is None or invoice["status"] == "draft":
                return _page("Invoice not found", "<h1>This invoice is not available.</h1>")
            merchant = s["accounts"][account]["name"]
        # As Stripe's hosted invoice shows a line: description, quantity, amount.
        rows = "".join(
            f"<tr data-testid=line><td>{html.escape(line['description'] or 'Item')}</td>"
            f"<td>Qty {line['quantity']}</td>"
            f"<td align=right>{_money(line['amount'], line['currency'])}</td></tr>"
            for line in invoice["lines"]["data"]
        )
        status = invoice["status"]
        actions = ""
        if status == "open":
            base = f"/stripe/_pages/invoice/{account}/{invoice_id}"
            actions = _form(f"{base}/pay", "Pay", "pay") + _form(
                f"{base}/fail", "Pay with a card that fails", "pay-fail", True
            )
        notice = f'<p class="error" data-testid="error">{html.escape(error)}</p>' if error else ""
        return _page(
            f"Invoice {invoice['number']}",
            f"""
<h1>{html.escape(merchant)}</h1>
<p>Invoice <b>{html.escape(invoice["number"] or "")}</b> for
{html.escape(invoice["customer_name"] or invoice["customer_email"] or invoice["customer"])}
· <span class="badge" data-testid="status">{html.escape(status)}</span></p>
<p>{html.escape(invoice["description"] or "")}</p>
<table>{rows}<tr class="total"><td colspan=2>Amount due</td>
<td align=right data-testid="amount">{_money(invoice["amount_remaining"], invoice["currency"])}</td>
</tr></table>{notice}<p>{actions}</p>""",
        )

    @router.post("/_pages/invoice/{account}/{invoice_id}/{action}")
    def invoice_action(account: str, invoice_id: str, action: str) -> Response:
        page = f"/stripe/_pages/invoice/{account}/{invoice_id}"
        with ctx.store.section("stripe") as s:
            op = op_for(s, account)
            invoice = s["objects"][account].get("invoice", {}).get(invoice_id)
            if invoice is None:
                return RedirectResponse(page, status_code=303)
            method = "pm_card_chargeDeclined" if action == "fail" else "pm_card_visa"
            try:
                invoicing.pay(op, invoice, method)
            except StripeError as exc:
                return RedirectResponse(
                    f"{page}?{urlencode({'error': exc.message})}", status_code=303
                )
        return RedirectResponse(page, status_code=303)

    @router.get("/_pages/invoice/{account}/{invoice_id}/pdf")
    def invoice_pdf(account: str, invoice_id: str) -> Response:
        return Response(
            f"Invoice {invoice_id} (sandbox: no PDF is rendered)\n", media_type="text/plain"
        )

    @router.get("/_pages/receipt/{account}/{intent_id}", response_class=HTMLResponse)
    def receipt(account: str, intent_id: str) -> Response:
        return _page("Receipt", f"<h1>Receipt</h1><p>Payment {html.escape(intent_id)}</p>")

    # -- checkout page -------------------------------------------------------------------
    @router.get("/_pages/checkout/{account}/{session_id}", response_class=HTMLResponse)
    def checkout_page(account: str, session_id: str, error: str = "") -> Response:
        with ctx.store.section("stripe") as s:
            ensure_seeded(s, ctx)
            session = s["objects"].get(account, {}).get("checkout.session", {}).get(session_id)
            if session is None:
                return _page("Not found", "<h1>This checkout page does not exist.</h1>")
            lines = s["session_lines"][session_id]["lines"]
            prices = s["objects"][account].get("price", {})
            products = s["objects"][account].get("product", {})
            merchant = s["accounts"][account]["name"]
        rows = ""
        for line in lines:
            price = prices[line["price"]]
            name = products.get(price["product"], {}).get("name", "Item")
            every = f" / {price['recurring']['interval']}" if price["recurring"] else ""
            rows += (
                f"<tr><td>{html.escape(name)} x {line['quantity']}</td><td align=right>"
                f"{_money(line['amount'], line['currency'])}{every}</td></tr>"
            )
        base = f"/stripe/_pages/checkout/{account}/{session_id}"
        actions = ""
        if session["status"] == "open":
            actions = (
                _form(f"{base}/pay", "Pay", "pay")
                + _form(f"{base}/fail", "Pay with a card that fails", "pay-fail", True)
                + _form(f"{base}/cancel", "Cancel", "cancel", True)
            )
        notice = f'<p class="error" data-testid="error">{html.escape(error)}</p>' if error else ""
        return _page(
            f"Pay {merchant}",
            f"""<h1>{html.escape(merchant)}</h1>
<p>Checkout · <span class="badge" data-testid="status">{html.escape(session["status"])}</span></p>
<table>{rows}<tr class="total"><td>Total</td>
<td align=right>{_money(session["amount_total"], session["currency"])}</td></tr></table>
{notice}<p>{actions}</p><p class="muted">Card 4242 4242 4242 4242 (sandbox)</p>""",
        )

    @router.post("/_pages/checkout/{account}/{session_id}/{action}")
    def checkout_action(account: str, session_id: str, action: str) -> Response:
        page = f"/stripe/_pages/checkout/{account}/{session_id}"
        with ctx.store.section("stripe") as s:
            op = op_for(s, account)
            session = s["objects"][account].get("checkout.session", {}).get(session_id)
            if session is None:
                return RedirectResponse(page, status_code=303)
            if action == "cancel":
                return RedirectResponse(session["cancel_url"] or page, status_code=303)
            failure = checkout.complete_session(op, session, fail=action == "fail")
            if failure:
                return RedirectResponse(f"{page}?{urlencode({'error': failure})}", status_code=303)
            target = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)
        return RedirectResponse(target, status_code=303)

    # -- Stripe Connect OAuth ------------------------------------------------------------
    @router.get("/connect/oauth/authorize", response_class=HTMLResponse)
    def authorize_page(request: Request) -> Response:
        query = dict(request.query_params)
        with ctx.store.section("stripe") as s:
            ensure_seeded(s, ctx)
            platform = next(
                (
                    a
                    for a in s["accounts"].values()
                    if a["client_id"] and a["client_id"] == query.get("client_id")
                ),
                None,
            )
        if platform is None:
            return _page("Connect", '<h1 class="error">Unknown client_id.</h1>')
        if not query.get("redirect_uri"):
            return _page("Connect", '<h1 class="error">redirect_uri is required.</h1>')
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in query.items()
        )
        return _page(
            "Connect with Stripe",
            f"""<h1>Connect to {html.escape(platform["name"])}</h1>
<p>{html.escape(platform["name"])} asks to manage payments on your Stripe account.</p>
<form method="post" action="/stripe/connect/oauth/authorize/decision">{hidden}
<button name="decision" value="allow" data-testid="connect-allow">
Connect my sandbox account</button>
<button class="secondary" name="decision" value="deny" data-testid="connect-deny">Deny</button>
</form>""",
        )

    @router.post("/connect/oauth/authorize/decision")
    async def authorize_decision(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        redirect_uri = form.get("redirect_uri", "")
        state = form.get("state", "")
        if form.get("decision") != "allow":
            query = {
                "error": "access_denied",
                "error_description": "The user denied your request",
                "state": state,
            }
            return RedirectResponse(f"{redirect_uri}?{urlencode(query)}", status_code=303)
        with ctx.store.section("stripe") as s:
            platform = next(
                a for a in s["accounts"].values() if a["client_id"] == form.get("client_id")
            )
            account_id = new_id("acct_1", 15)
            email = form.get("stripe_user[email]") or f"{account_id}@sandbox.example"
            add_account(
                s,
                account_id,
                f"Connected account {account_id[-4:]}",
                email,
                connected_to=platform["id"],
            )
            code = new_id("ac_", 32)
            s["oauth_codes"][code] = {
                "platform": platform["id"],
                "account": account_id,
                "scope": form.get("scope") or "read_write",
            }
        query = {"code": code, "scope": form.get("scope") or "read_write", "state": state}
        return RedirectResponse(f"{redirect_uri}?{urlencode(query)}", status_code=303)

    def oauth_error(error: str, description: str) -> JSONResponse:
        return JSONResponse({"error": error, "error_description": description}, status_code=400)

    @router.post("/connect/oauth/token")
    async def oauth_token(request: Request) -> Response:
        params = dict(parse_qsl((await request.body()).decode()))
        with ctx.store.section("stripe") as s:
            ensure_seeded(s, ctx)
            try:
                caller = authenticate(s, request.headers.get("authorization", ""), None)
            except StripeError as exc:
                return JSONResponse(exc.body(), status_code=exc.status)
            grant = params.get("grant_type")
            if grant == "authorization_code":
                code = params.get("code", "")
                found = s["oauth_codes"].pop(code, None)
                if found is None or found["platform"] != caller.account:
                    return oauth_error(
                        "invalid_grant", f"Authorization code does not exist: {code}"
                    )
                account_id, scope = found["account"], found["scope"]
            elif grant == "refresh_token":
                found = s.setdefault("refresh_tokens", {}).get(params.get("refresh_token", ""))
                if found is None or found["platform"] != caller.account:
                    return oauth_error("invalid_grant", "Invalid refresh token.")
                account_id, scope = found["account"], found["scope"]
            else:
                return oauth_error("unsupported_grant_type", f"Unsupported grant type: {grant}")
            keys = {k: v for k, v in s["keys"].items() if v["account"] == account_id}
            secret = next(k for k, v in keys.items() if v["kind"] == "secret")
            publishable = next(k for k, v in keys.items() if v["kind"] == "publishable")
            refresh = new_id("rt_", 40)
            s.setdefault("refresh_tokens", {})[refresh] = {
                "platform": caller.account,
                "account": account_id,
                "scope": scope,
            }
        return JSONResponse(
            {
                "access_token": secret,
                "livemode": False,
                "refresh_token": refresh,
                "token_type": "bearer",
                "stripe_publishable_key": publishable,
                "stripe_user_id": account_id,
                "scope": scope,
            }
        )

    @router.post("/connect/oauth/deauthorize")
    async def oauth_deauthorize(request: Request) -> Response:
        params = dict(parse_qsl((await request.body()).decode()))
        with ctx.store.section("stripe") as s:
            ensure_seeded(s, ctx)
            try:
                caller = authenticate(s, request.headers.get("authorization", ""), None)
            except StripeError as exc:
                return JSONResponse(exc.body(), status_code=exc.status)
            account_id = params.get("stripe_user_id", "")
            connected = s["accounts"].get(account_id)
            platform = s["accounts"][caller.account]
            if (
                connected is None
                or connected.get("connected_to") != caller.account
                or params.get("client_id") != platform["client_id"]
            ):
                return oauth_error(
                    "invalid_client", f"No such application connected to {account_id}"
                )
            connected["connected_to"] = None
            for info in s["keys"].values():
                if info["account"] == account_id:
                    info["revoked"] = True
            s["refresh_tokens"] = {
                k: v for k, v in s.get("refresh_tokens", {}).items() if v["account"] != account_id
            }
        return JSONResponse({"stripe_user_id": account_id})

    # -- the sandbox's own helpers (no auth: only tests and the control page use them) ----
    @router.post("/_sandbox/accounts")
    async def new_account(request: Request) -> dict[str, Any]:
        body: dict[str, Any] = await request.json() if await request.body() else {}
        with ctx.store.section("stripe") as s:
            ensure_seeded(s, ctx)
            account_id = new_id("acct_1", 15)
            keys = add_account(
                s,
                account_id,
                body.get("name") or "Sandbox business",
                body.get("email") or f"{account_id}@sandbox.example",
            )
            restricted = f"rk_test_51{new_id('', 95)}"
            s["keys"][restricted] = {
                "account": account_id,
                "kind": "restricted",
                "permissions": body.get("restricted_permissions") or {"customers": "read"},
            }
        return {
            "account": account_id,
            "secret_key": keys["secret"],
            "publishable_key": keys["publishable"],
            "restricted_key": restricted,
        }

    @router.post("/_sandbox/disputes")
    async def new_dispute(request: Request) -> Response:
        """Open a dispute on a charge (the control page's form, or JSON from tests)."""
        if request.headers.get("content-type", "").startswith("application/json"):
            body = await request.json()
        else:
            body = {k: str(v) for k, v in (await request.form()).items()}
        with ctx.store.section("stripe") as s:
            account = next(
                (
                    a
                    for a, objs in s["objects"].items()
                    if body.get("charge") in objs.get("charge", {})
                ),
                None,
            )
            if account is None:
                return JSONResponse(
                    StripeError(404, f"No such charge: '{body.get('charge')}'").body(),
                    status_code=404,
                )
            dispute = payments.open_dispute(
                Op(s, ctx, account, {}), body["charge"], body.get("reason") or "fraudulent"
            )
        if "json" in request.headers.get("accept", "") or "json" in request.headers.get(
            "content-type", ""
        ):
            return JSONResponse(dispute)
        return RedirectResponse("/", status_code=303)

    return router
