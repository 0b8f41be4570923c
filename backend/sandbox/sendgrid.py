"""SendGrid in the provider sandbox: the slice of the v3 API the product calls through the official
SDK (mail/send, scopes), a mailbox page where a person reads what was sent and acts as the
recipient (open, click, bounce, ...), and SendGrid's signed Event Webhook for everything that
happens to a message."""

from __future__ import annotations

import base64
import functools
import html
import json
import re
import time
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from backend.sandbox import sendgrid_schema
from backend.sandbox.context import SandboxContext, Section
from backend.sandbox.demo_accounts import DEMO_WORKSPACES
from backend.sandbox.store import new_id, now

NAME = "sendgrid"
PREFIX = "/sendgrid"
# Shaped like a real key (SG. + 22 + . + 43) so the product's format checks accept it.
DEMO_API_KEY = "SG.sandbox-demo.OfflineDemoKeyForTheIntegrationsHubSandbox1"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
BAD_GRANT = "The provided authorization grant is invalid, expired, or revoked"
SCOPES = ["mail.send", "mail.batch.create", "mail.batch.read", "user.webhooks.event.settings.read"]
# The mailbox keeps the newest messages only, so a long `make run` keeps a small state file.
MAX_MESSAGES = 2000
# A message's status is its latest event, in the words a person would use.
STATUS = {"open": "opened", "click": "clicked", "bounce": "bounced", "unsubscribe": "unsubscribed"}
# What a person can make happen from the message page (clicks go through the tracked links).
PERSON_EVENTS: dict[str, dict[str, Any]] = {
    "open": {"sg_machine_open": False},
    "bounce": {
        "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
        "status": "5.1.1",
        "type": "bounce",
        "bounce_classification": "Invalid Address",
    },
    "dropped": {"reason": "Bounced Address", "status": "5.0.0"},
    "spamreport": {},
    "unsubscribe": {},
}
# SendGrid's docs show smtp-id only on the events its MTA produces.
SMTP_EVENTS = {"processed", "delivered", "bounce", "dropped"}
_URL = re.compile(r"""(https?://[^\s<>"']+)""")
_HREF = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)

Message = dict[str, Any]
EventSpec = tuple[str, str, dict[str, Any]]  # (sg_message_id, event, extra fields)


def render_error(status: int, kind: str, message: str) -> Response:
    return _errors(status, [(message, None)])


def _errors(status: int, problems: list[sendgrid_schema.Problem]) -> JSONResponse:
    errors = [{"message": message, "field": field, "help": None} for message, field in problems]
    return JSONResponse({"errors": errors}, status_code=status)


def _seed(section: dict[str, Any]) -> dict[str, Any]:
    """Fill the section at first use: the demo key, the webhook signing key pair, the mailbox."""
    keys = section.setdefault("api_keys", [DEMO_API_KEY])
    # Each demo workspace's own key, added to a saved state too.
    keys.extend(d.sendgrid_api_key for d in DEMO_WORKSPACES if d.sendgrid_api_key not in keys)
    if "signing_key" not in section:
        private = ec.generate_private_key(ec.SECP256R1())
        section["signing_key"] = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        # Base64 DER SubjectPublicKeyInfo: what SendGrid's settings page shows and the SDK loads.
        section["public_key"] = base64.b64encode(
            private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode()
    section.setdefault("messages", {})
    # Event webhook URL overrides: by API key, or "" for the whole sandbox.
    section.setdefault("webhooks", {})
    return section


def _read(ctx: SandboxContext) -> dict[str, Any]:
    """A copy of the section for reading; seeds it (a write) only the first time."""
    state = ctx.store.read(NAME)
    if "signing_key" not in state:
        with ctx.store.section(NAME) as section:
            _seed(section)
        state = ctx.store.read(NAME)
    return state


@functools.lru_cache(maxsize=4)
def _private_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("the SendGrid sandbox's signing key is not an EC key")
    return key


def _signer(pem: str) -> Callable[[bytes], dict[str, str]]:
    def sign(body: bytes) -> dict[str, str]:
        # Signed per attempt, as SendGrid does: ECDSA P-256/SHA-256 over timestamp + raw body.
        timestamp = str(int(time.time()))
        signature = _private_key(pem).sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: timestamp}

    return sign


def _event(message: Message, kind: str, extra: dict[str, Any]) -> dict[str, Any]:
    """One Event Webhook object; custom args first so that SendGrid's own fields win."""
    event: dict[str, Any] = dict(message["custom_args"])
    event.update(
        email=message["to"]["email"],
        timestamp=now(),
        event=kind,
        sg_event_id=new_id("", 22),
        sg_message_id=message["id"],
    )
    if kind in SMTP_EVENTS:
        event["smtp-id"] = f"<{message['x_message_id']}@sandbox.sendgrid.net>"
    if kind == "delivered":
        event["response"] = "250 OK"
    categories = message["categories"]
    if categories:
        # A single category arrives as a string, several as an array.
        event["category"] = categories[0] if len(categories) == 1 else categories
    if message["asm_group_id"] is not None:
        event["asm_group_id"] = message["asm_group_id"]
    event.update(PERSON_EVENTS.get(kind, {}))
    event.update(extra)
    return event


def _tracking(message: Message, setting: str) -> bool:
    """SendGrid tracks opens and clicks unless the send turned the setting off."""
    return (message["tracking_settings"].get(setting) or {}).get("enable", True) is not False


def _emit(ctx: SandboxContext, specs: list[EventSpec]) -> int:
    """Record events on their messages and queue them as signed batches, one per webhook URL.
    Returns how many of the messages exist."""
    found = 0
    batches: dict[str, list[dict[str, Any]]] = {}
    with ctx.store.section(NAME) as section:
        state = _seed(section)
        pem: str = state["signing_key"]
        hooks: dict[str, str] = state["webhooks"]
        for message_id, kind, extra in specs:
            message = state["messages"].get(message_id)
            if message is None:
                continue
            found += 1
            tracked = {"open": "open_tracking", "click": "click_tracking"}.get(kind)
            if tracked and not _tracking(message, tracked):
                continue
            event = _event(message, kind, extra)
            message["events"].append(event)
            message["status"] = STATUS.get(kind, kind)
            url = hooks.get(message["api_key"]) or hooks.get("") or ctx.webhook_targets.get(NAME)
            if url:
                batches.setdefault(url, []).append(event)
    for url, events in batches.items():
        # Compact JSON ending in CR LF, byte for byte the shape of SendGrid's own payloads.
        body = (json.dumps(events, separators=(",", ":")) + "\r\n").encode()
        kinds = ", ".join(dict.fromkeys(e["event"] for e in events))
        ctx.deliverer.send(NAME, url, body, _signer(pem), f"{kinds} ({len(events)})")
    return found


def _messages(payload: dict[str, Any], x_message_id: str, api_key: str) -> list[Message]:
    """One mailbox entry per recipient, as SendGrid gives each recipient its own sg_message_id."""
    content = {c["type"]: c["value"] for c in payload.get("content", [])}
    shared_args = payload.get("custom_args")
    shared_args = shared_args if isinstance(shared_args, dict) else {}
    records: list[Message] = []
    for personalization in payload["personalizations"]:
        for kind in ("to", "cc", "bcc"):
            for recipient in personalization.get(kind, []):
                record: Message = {
                    "id": f"{x_message_id}.filterdrecv-sandbox-{len(records)}.0",
                    "x_message_id": x_message_id,
                    "api_key": api_key,
                    "from": personalization.get("from") or payload["from"],
                    "to": recipient,
                    "kind": kind,
                    "subject": personalization.get("subject") or payload.get("subject", ""),
                    "text": content.get("text/plain"),
                    "html": content.get("text/html"),
                    "template_id": payload.get("template_id"),
                    "dynamic_template_data": personalization.get("dynamic_template_data") or {},
                    # The personalization's custom args override the message's.
                    "custom_args": {**shared_args, **personalization.get("custom_args", {})},
                    "categories": payload.get("categories", []),
                    "tracking_settings": payload.get("tracking_settings", {}),
                    "asm_group_id": (payload.get("asm") or {}).get("group_id"),
                    "sent_at": now(),
                    "send_at": personalization.get("send_at") or payload.get("send_at"),
                    "status": "processed",
                    "events": [],
                }
                records.append(record)
    return records


def _authorize(ctx: SandboxContext, request: Request) -> str | Response:
    """The caller's API key, or SendGrid's 401."""
    header = request.headers.get("authorization", "")
    if not header:
        return _errors(401, [("authorization required", None)])
    scheme, _, key = header.partition(" ")
    # The section, not a copy: read() would copy the whole mailbox on every API call.
    with ctx.store.section(NAME) as section:
        valid = scheme.lower() == "bearer" and key.strip() in _seed(section)["api_keys"]
    return key.strip() if valid else _errors(401, [(BAD_GRANT, None)])


async def _raw_body(request: Request) -> bytes:
    # Read in the event loop so that the handlers themselves can be plain threaded functions.
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


def build_router(ctx: SandboxContext) -> APIRouter:
    sendgrid_schema.validator()  # refuse to start without SendGrid's schema, saying where it goes
    router = APIRouter()

    @router.post("/v3/mail/send")
    def mail_send(request: Request, raw: RawBody) -> Response:
        key = _authorize(ctx, request)
        if isinstance(key, Response):
            return key
        try:
            payload = json.loads(raw)
        except ValueError:
            return _errors(400, [("Bad Request", None)])
        problems = sendgrid_schema.problems(payload)
        if problems:
            return _errors(400, problems)
        x_message_id = new_id("", 22)
        records = _messages(payload, x_message_id, key)
        with ctx.store.section(NAME) as section:
            mailbox: dict[str, Message] = _seed(section)["messages"]
            mailbox.update((record["id"], record) for record in records)
            for stale in list(mailbox)[: max(0, len(mailbox) - MAX_MESSAGES)]:
                del mailbox[stale]
        _emit(ctx, [(r["id"], kind, {}) for r in records for kind in ("processed", "delivered")])
        return Response(status_code=202, headers={"X-Message-Id": x_message_id})

    @router.get("/v3/scopes")
    def scopes(request: Request) -> Response:
        key = _authorize(ctx, request)
        return key if isinstance(key, Response) else JSONResponse({"scopes": SCOPES})

    @router.post("/_sandbox/api_keys")
    def create_api_key() -> dict[str, str]:
        key = f"SG.{new_id('', 22)}.{new_id('', 43)}"
        with ctx.store.section(NAME) as section:
            _seed(section)["api_keys"].append(key)
        return {"api_key": key}

    @router.get("/_sandbox/public_key")
    def public_key() -> dict[str, str]:
        return {"public_key": _read(ctx)["public_key"]}

    @router.post("/_sandbox/event_webhook")
    def event_webhook(request: Request, raw: RawBody) -> Response:
        """{"url": ...} for the caller's API key if it sends one, else for the whole sandbox;
        a null url goes back to the default receiver."""
        scope = ""
        if request.headers.get("authorization"):
            key = _authorize(ctx, request)
            if isinstance(key, Response):
                return key
            scope = key
        try:
            url = json.loads(raw or b"{}").get("url")
        except (ValueError, AttributeError):
            return _errors(400, [("Bad Request", None)])
        if url is not None and urlsplit(str(url)).scheme not in ("http", "https"):
            return _errors(400, [("The url must be an http(s) URL.", "url")])
        with ctx.store.section(NAME) as section:
            webhooks = _seed(section)["webhooks"]
            if url:
                webhooks[scope] = url
            else:
                webhooks.pop(scope, None)
        return JSONResponse({"url": url, "scope": "api_key" if scope else "sandbox"})

    @router.get("/_pages/mailbox", response_class=HTMLResponse)
    def mailbox_page() -> HTMLResponse:
        messages = list(_read(ctx)["messages"].values())
        rows = (
            "".join(
                f"<tr><td>{_when(m['sent_at'])}</td><td>{_address(m['to'])}</td><td>{_link(m)}</td>"
                f"<td>{m['status']}</td></tr>"
                for m in reversed(messages)
            )
            or "<tr><td colspan='4'>No mail yet.</td></tr>"
        )
        return _page(
            "Mailbox",
            "<h1>SendGrid mailbox</h1><p>Every message the sandbox accepted, one per recipient."
            "</p><table><tr><th>sent</th><th>to</th><th>subject</th><th>status</th></tr>"
            f"{rows}</table>",
        )

    @router.get("/_pages/mailbox/{message_id}", response_class=HTMLResponse)
    def message_page(message_id: str) -> HTMLResponse:
        message = _read(ctx)["messages"].get(message_id)
        if message is None:
            return _missing()
        return _page(_subject(message), _message_html(ctx, message))

    @router.post("/_pages/mailbox/{message_id}/events/{kind}")
    def person_event(message_id: str, kind: str, request: Request) -> Response:
        if kind not in PERSON_EVENTS:
            return _page("Not found", f"<h1>Unknown event {html.escape(kind)}</h1>", 404)
        extra = _visitor(request) if kind == "open" else {}
        if not _emit(ctx, [(message_id, kind, extra)]):
            return _missing()
        return RedirectResponse(_page_url(message_id), status_code=303)

    @router.api_route("/_pages/click/{message_id}", methods=["GET", "POST"])
    def click(message_id: str, url: str, request: Request) -> Response:
        if urlsplit(url).scheme not in ("http", "https"):
            return _page("Bad link", "<h1>Only http(s) links are tracked</h1>", 400)
        if not _emit(ctx, [(message_id, "click", {"url": url, **_visitor(request)})]):
            return _missing()
        return RedirectResponse(url, status_code=302)

    return router


def summary(ctx: SandboxContext) -> list[Section]:
    state = _read(ctx)
    target = state["webhooks"].get("") or ctx.webhook_targets.get(NAME) or "nowhere"
    rows = [
        [_when(m["sent_at"]), _address(m["to"]), _link(m), m["status"]]
        for m in reversed(list(state["messages"].values())[-50:])
    ]
    note = (
        f'<a href="{PREFIX}/_pages/mailbox">Mailbox</a>. Demo API key '
        f"<code>{DEMO_API_KEY}</code> (POST {PREFIX}/_sandbox/api_keys for another). "
        f"Event webhook to <code>{html.escape(target)}</code>, verification key "
        f"<code>{state['public_key']}</code>."
    )
    return [Section("SendGrid messages", ["sent", "to", "subject", "status"], rows, note)]


# --- pages -------------------------------------------------------------------------------------

_CSS = """
body { font: 14px system-ui, sans-serif; margin: 2rem; color: #1c2024; max-width: 60rem; }
table { border-collapse: collapse; } td, th { border: 1px solid #d9d9e0; padding: 4px 8px;
text-align: left; vertical-align: top; } th { background: #f0f0f3; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 2px 1rem; }
dt { font-weight: 600; } .body { border: 1px solid #d9d9e0; padding: 1rem; margin: 1rem 0; }
form { display: inline; } .note { color: #60646c; }
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)} · '
        f"SendGrid sandbox</title><style>{_CSS}</style></head><body>{body}</body></html>",
        status_code=status,
    )


def _missing() -> HTMLResponse:
    return _page("Not found", "<h1>No such message</h1>", 404)


def _page_url(message_id: str) -> str:
    return f"{PREFIX}/_pages/mailbox/{quote(message_id, safe='')}"


def _link(message: Message) -> str:
    return f'<a href="{_page_url(message["id"])}">{html.escape(_subject(message))}</a>'


def _subject(message: Message) -> str:
    # A dynamic template brings its own subject, which the sandbox does not have.
    template = message["template_id"]
    return str(message["subject"] or (f"Template {template}" if template else "(no subject)"))


def _when(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def _address(person: dict[str, Any]) -> str:
    name = person.get("name")
    email = html.escape(person["email"])
    return f"{html.escape(name)} &lt;{email}&gt;" if name else email


def _visitor(request: Request) -> dict[str, Any]:
    """The person's browser stands in for the recipient's mail client."""
    ip = request.client.host if request.client else "127.0.0.1"
    return {"useragent": request.headers.get("user-agent", ""), "ip": ip}


def _linkify(text: str, link: Callable[[str], str]) -> str:
    """Escaped text whose URLs become (tracked) links; split() alternates text and URLs."""
    parts = _URL.split(text)
    return "".join(
        html.escape(part)
        if index % 2 == 0
        else f'<a href="{html.escape(link(part))}">{html.escape(part)}</a>'
        for index, part in enumerate(parts)
    )


def _data_html(value: Any, link: Callable[[str], str]) -> str:
    """Dynamic template data as nested definition lists, since there is no template to fill."""
    if isinstance(value, dict):
        items = "".join(
            f"<dt>{html.escape(str(k))}</dt><dd>{_data_html(v, link)}</dd>"
            for k, v in value.items()
        )
        return f"<dl>{items}</dl>"
    if isinstance(value, list):
        return "<ol>" + "".join(f"<li>{_data_html(v, link)}</li>" for v in value) + "</ol>"
    if isinstance(value, str):
        return _linkify(value, link)
    return html.escape(json.dumps(value))


def _message_html(ctx: SandboxContext, message: Message) -> str:
    message_id = message["id"]

    def tracked(url: str) -> str:
        # What SendGrid's click tracking does to every link: through its server, then on.
        return (
            f"{ctx.public_url}{PREFIX}/_pages/click/{quote(message_id, safe='')}"
            f"?url={quote(url, safe='')}"
        )

    link: Callable[[str], str] = tracked if _tracking(message, "click_tracking") else str
    if message["template_id"]:
        body = (
            f"<p class='note'>Dynamic template <code>{html.escape(message['template_id'])}</code>"
            ". The sandbox has no templates; this is the data it would be rendered with.</p>"
            + _data_html(message["dynamic_template_data"], link)
        )
    elif message["html"] is not None:
        # The sender's HTML as is (a sandbox sanitizes nothing), with its links tracked.
        body = _HREF.sub(
            lambda m: f'{m[1]}"{html.escape(link(html.unescape(m[3])))}"', message["html"]
        )
        if message["text"] is not None:
            body += f"<details><summary>text/plain</summary><pre>{_linkify(message['text'], link)}"
            body += "</pre></details>"
    else:
        body = f"<pre>{_linkify(message['text'] or '', link)}</pre>"
    kinds = [k for k in PERSON_EVENTS if k != "open" or _tracking(message, "open_tracking")]
    buttons = "".join(
        f"<form method='post' action='{_page_url(message_id)}/events/{k}'>"
        f"<button type='submit'>{html.escape(k)}</button></form> "
        for k in kinds
    )
    meta = {
        "From": _address(message["from"]),
        message["kind"].capitalize(): _address(message["to"]),
        "Sent": html.escape(_when(message["sent_at"])),
        "Status": html.escape(message["status"]),
        "sg_message_id": f"<code>{html.escape(message_id)}</code>",
        "Categories": html.escape(", ".join(message["categories"])) or "—",
        "Custom args": f"<code>{html.escape(json.dumps(message['custom_args']))}</code>",
    }
    events = "".join(
        f"<tr><td>{html.escape(e['event'])}</td><td>{html.escape(_when(e['timestamp']))}</td>"
        f"<td><code>{html.escape(json.dumps(e))}</code></td></tr>"
        for e in message["events"]
    )
    return (
        f"<p><a href='{PREFIX}/_pages/mailbox'>← Mailbox</a></p>"
        f"<h1>{html.escape(_subject(message))}</h1><dl class='meta'>"
        + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in meta.items())
        + f"</dl><p>Act as the recipient: {buttons}"
        "<span class='note'>(click a link in the message to click)</span></p>"
        f"<div class='body'>{body}</div><h2>Events</h2>"
        f"<table><tr><th>event</th><th>at</th><th>as sent to the webhook</th></tr>{events}</table>"
    )
