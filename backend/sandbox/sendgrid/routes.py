"""The HTTP surface under /sendgrid: the v3 API (mail/send, scopes), sandbox set-up endpoints
and the mailbox pages.

Tested in tests/sandbox/test_sendgrid.py and tests/integrations/test_sendgrid.py (through
the sendgrid SDK).
"""

from __future__ import annotations

import html
import json
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from backend.sandbox.context import SandboxContext
from backend.sandbox.sendgrid import inbound, schema
from backend.sandbox.sendgrid.mailbox import (
    MAX_MESSAGES,
    NAME,
    PERSON_EVENTS,
    SCOPES,
    Message,
    authorize,
    emit,
    error_response,
    read_state,
    seeded,
    split_messages,
)
from backend.sandbox.sendgrid.pages import (
    address,
    message_html,
    message_link,
    missing_page,
    page,
    page_url,
    subject_of,
    visitor,
    when,
)
from backend.sandbox.store import new_id


async def _raw_body(request: Request) -> bytes:
    # Read in the event loop so that the handlers themselves can be plain threaded functions.
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


def build_router(ctx: SandboxContext) -> APIRouter:
    schema.validator()  # refuse to start without SendGrid's schema, saying where it goes
    router = APIRouter()

    @router.post("/v3/mail/send")
    def mail_send(request: Request, raw: RawBody) -> Response:
        key = authorize(ctx, request)
        if isinstance(key, Response):
            return key
        try:
            payload = json.loads(raw)
        except ValueError:
            return error_response(400, [("Bad Request", None)])
        problems = schema.problems(payload)
        if problems:
            return error_response(400, problems)
        x_message_id = new_id("", 22)
        records = split_messages(payload, x_message_id, key)
        with ctx.store.section(NAME) as section:
            mailbox: dict[str, Message] = seeded(section)["messages"]
            mailbox.update((record["id"], record) for record in records)
            # Counted apart from the mailbox, which keeps only the newest MAX_MESSAGES.
            accepted = section.setdefault("accepted", {"requests": 0, "personalizations": 0})
            accepted["requests"] += 1
            accepted["personalizations"] += len(payload["personalizations"])
            for stale in list(mailbox)[: max(0, len(mailbox) - MAX_MESSAGES)]:
                del mailbox[stale]
        emit(ctx, [(r["id"], kind, {}) for r in records for kind in ("processed", "delivered")])
        return Response(status_code=202, headers={"X-Message-Id": x_message_id})

    @router.get("/v3/scopes")
    def scopes(request: Request) -> Response:
        key = authorize(ctx, request)
        return key if isinstance(key, Response) else JSONResponse({"scopes": SCOPES})

    @router.get("/_sandbox/accepted")
    def accepted_counts() -> dict[str, int]:
        """mail/send requests accepted since the start (or the last reset), and their
        personalizations: what a benchmark counts when the mailbox keeps only the newest."""
        counted = ctx.store.lookup(NAME, "accepted") or {}
        return {"requests": 0, "personalizations": 0, **counted}

    @router.delete("/_sandbox/accepted")
    def reset_accepted() -> dict[str, int]:
        with ctx.store.section(NAME) as section:
            section["accepted"] = {"requests": 0, "personalizations": 0}
        return {"requests": 0, "personalizations": 0}

    @router.post("/_sandbox/api_keys")
    def create_api_key() -> dict[str, str]:
        key = f"SG.{new_id('', 22)}.{new_id('', 43)}"
        with ctx.store.section(NAME) as section:
            seeded(section)["api_keys"].append(key)
        return {"api_key": key}

    @router.get("/_sandbox/public_key")
    def public_key() -> dict[str, str]:
        return {"public_key": read_state(ctx)["public_key"]}

    def set_target(request: Request, raw: bytes, table: str) -> tuple[str, str | None] | Response:
        """Set (or, with a null url, remove) a URL in ``table`` for the caller's API key if it
        sends one, else for the whole sandbox: (scope, url), or the error answer."""
        scope = ""
        if request.headers.get("authorization"):
            key = authorize(ctx, request)
            if isinstance(key, Response):
                return key
            scope = key
        try:
            url = json.loads(raw or b"{}").get("url")
        except (ValueError, AttributeError):
            return error_response(400, [("Bad Request", None)])
        if url is not None and urlsplit(str(url)).scheme not in ("http", "https"):
            return error_response(400, [("The url must be an http(s) URL.", "url")])
        with ctx.store.section(NAME) as section:
            targets = seeded(section)[table]
            if url:
                targets[scope] = str(url)
            else:
                targets.pop(scope, None)
        return scope, url

    @router.post("/_sandbox/event_webhook")
    def event_webhook(request: Request, raw: RawBody) -> Response:
        """{"url": ...} for the caller's API key if it sends one, else for the whole sandbox;
        a null url goes back to the default receiver."""
        done = set_target(request, raw, "webhooks")
        if isinstance(done, Response):
            return done
        scope, url = done
        return JSONResponse({"url": url, "scope": "api_key" if scope else "sandbox"})

    @router.post("/_sandbox/inbound_parse")
    def inbound_parse(request: Request, raw: RawBody) -> Response:
        """{"url": ...}: where replies to the caller's API key's mail are posted (to any
        mail, without an Authorization); a null url removes it. A user and password in the
        URL are sent as basic auth, as SendGrid does."""
        done = set_target(request, raw, "inbound_parse")
        if isinstance(done, Response):
            return done
        scope, url = done
        return JSONResponse({"scope": "api_key" if scope else "sandbox", "set": bool(url)})

    @router.post("/_pages/mailbox/{message_id}/reply")
    async def reply(message_id: str, request: Request) -> Response:
        form = await request.form()
        text = str(form.get("text") or "").strip() or inbound.DEFAULT_REPLY
        try:
            inbound.reply(ctx, message_id, text[:5000], attachment=bool(form.get("attachment")))
        except LookupError:
            return missing_page()
        except ValueError as exc:
            return page("No Inbound Parse URL", f"<h1>{html.escape(str(exc))}</h1>", 409)
        return RedirectResponse(page_url(message_id), status_code=303)

    @router.get("/_pages/mailbox", response_class=HTMLResponse)
    def mailbox_page() -> HTMLResponse:
        messages = list(read_state(ctx)["messages"].values())
        rows = (
            "".join(
                f"<tr><td>{when(m['sent_at'])}</td><td>{address(m['to'])}</td><td>{message_link(m)}</td>"
                f"<td>{m['status']}</td></tr>"
                for m in reversed(messages)
            )
            or "<tr><td colspan='4'>No mail yet.</td></tr>"
        )
        return page(
            "Mailbox",
            "<h1>SendGrid mailbox</h1><p>Every message the sandbox accepted, one per recipient."
            "</p><table><tr><th>sent</th><th>to</th><th>subject</th><th>status</th></tr>"
            f"{rows}</table>",
        )

    @router.get("/_pages/mailbox/{message_id}", response_class=HTMLResponse)
    def message_page(message_id: str) -> HTMLResponse:
        message = read_state(ctx)["messages"].get(message_id)
        if message is None:
            return missing_page()
        return page(subject_of(message), message_html(ctx, message))

    @router.post("/_pages/mailbox/{message_id}/events/{kind}")
    def person_event(message_id: str, kind: str, request: Request) -> Response:
        if kind not in PERSON_EVENTS:
            return page("Not found", f"<h1>Unknown event {html.escape(kind)}</h1>", 404)
        extra = visitor(request) if kind == "open" else {}
        if not emit(ctx, [(message_id, kind, extra)]):
            return missing_page()
        return RedirectResponse(page_url(message_id), status_code=303)

    @router.api_route("/_pages/click/{message_id}", methods=["GET", "POST"])
    def click(message_id: str, url: str, request: Request) -> Response:
        if urlsplit(url).scheme not in ("http", "https"):
            return page("Bad link", "<h1>Only http(s) links are tracked</h1>", 400)
        if not emit(ctx, [(message_id, "click", {"url": url, **visitor(request)})]):
            return missing_page()
        return RedirectResponse(url, status_code=302)

    return router
