"""What a person sees: the mailbox and message pages (where they act as the recipient) and the
emulator's table on the sandbox control page.

Tested in tests/sandbox/test_sendgrid.py and tests/integrations/test_sendgrid.py (through
the sendgrid SDK).
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse

from backend.sandbox.context import SandboxContext, Section
from backend.sandbox.sendgrid.inbound import DEFAULT_REPLY, without_credentials
from backend.sandbox.sendgrid.mailbox import (
    DEMO_API_KEY,
    NAME,
    PERSON_EVENTS,
    PREFIX,
    Message,
    is_tracked,
    read_state,
)

_URL = re.compile(r"""(https?://[^\s<>"']+)""")
_HREF = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)


_CSS = """
body { font: 14px system-ui, sans-serif; margin: 2rem; color: #1c2024; max-width: 60rem; }
table { border-collapse: collapse; } td, th { border: 1px solid #d9d9e0; padding: 4px 8px;
text-align: left; vertical-align: top; } th { background: #f0f0f3; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 2px 1rem; }
dt { font-weight: 600; } .body { border: 1px solid #d9d9e0; padding: 1rem; margin: 1rem 0; }
form { display: inline; } .note { color: #60646c; }
"""


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)} · '
        f"SendGrid sandbox</title><style>{_CSS}</style></head><body>{body}</body></html>",
        status_code=status,
    )


def missing_page() -> HTMLResponse:
    return page("Not found", "<h1>No such message</h1>", 404)


def page_url(message_id: str) -> str:
    return f"{PREFIX}/_pages/mailbox/{quote(message_id, safe='')}"


def message_link(message: Message) -> str:
    return f'<a href="{page_url(message["id"])}">{html.escape(subject_of(message))}</a>'


def subject_of(message: Message) -> str:
    # A dynamic template brings its own subject, which the sandbox does not have.
    template = message["template_id"]
    return str(message["subject"] or (f"Template {template}" if template else "(no subject)"))


def when(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def address(person: dict[str, Any]) -> str:
    name = person.get("name")
    email = html.escape(person["email"])
    return f"{html.escape(name)} &lt;{email}&gt;" if name else email


def visitor(request: Request) -> dict[str, Any]:
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


def message_html(ctx: SandboxContext, message: Message) -> str:
    message_id = message["id"]

    def tracked(url: str) -> str:
        # What SendGrid's click tracking does to every link: through its server, then on.
        return (
            f"{ctx.public_url}{PREFIX}/_pages/click/{quote(message_id, safe='')}"
            f"?url={quote(url, safe='')}"
        )

    link: Callable[[str], str] = tracked if is_tracked(message, "click_tracking") else str
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
    kinds = [k for k in PERSON_EVENTS if k != "open" or is_tracked(message, "open_tracking")]
    buttons = "".join(
        f"<form method='post' action='{page_url(message_id)}/events/{k}'>"
        f"<button type='submit'>{html.escape(k)}</button></form> "
        for k in kinds
    )
    meta = {
        "From": address(message["from"]),
        message["kind"].capitalize(): address(message["to"]),
        "Sent": html.escape(when(message["sent_at"])),
        "Status": html.escape(message["status"]),
        "sg_message_id": f"<code>{html.escape(message_id)}</code>",
        "Categories": html.escape(", ".join(message["categories"])) or "—",
        "Custom args": f"<code>{html.escape(json.dumps(message['custom_args']))}</code>",
    }
    events = "".join(
        f"<tr><td>{html.escape(e['event'])}</td><td>{html.escape(when(e['timestamp']))}</td>"
        f"<td><code>{html.escape(json.dumps(e))}</code></td></tr>"
        for e in message["events"]
    )
    # The recipient answers: SendGrid Inbound Parse posts the reply (inbound.py).
    reply_form = (
        f"<form method='post' action='{page_url(message_id)}/reply' class='reply'>"
        f"<p><label>Reply as {address(message['to'])}<br><textarea name='text' rows='3' "
        f"cols='60'>{html.escape(DEFAULT_REPLY)}</textarea></label><br>"
        "<label><input type='checkbox' name='attachment' value='1'> with a photo attached"
        "</label> <button type='submit'>Reply</button></p></form>"
    )
    replies = "".join(
        f"<tr><td>{html.escape(when(r['at']))}</td><td>{html.escape(r['text'])}</td>"
        f"<td><code>{html.escape(r['url'])}</code></td></tr>"
        for r in message.get("replies", [])
    )
    if replies:
        reply_form += (
            f"<table><tr><th>replied</th><th>text</th><th>posted to</th></tr>{replies}</table>"
        )
    return (
        f"<p><a href='{PREFIX}/_pages/mailbox'>← Mailbox</a></p>"
        f"<h1>{html.escape(subject_of(message))}</h1><dl class='meta'>"
        + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in meta.items())
        + f"</dl><p>Act as the recipient: {buttons}"
        "<span class='note'>(click a link in the message to click)</span></p>"
        f"{reply_form}<div class='body'>{body}</div><h2>Events</h2>"
        f"<table><tr><th>event</th><th>at</th><th>as sent to the webhook</th></tr>{events}</table>"
    )


def _without_credentials(url: str | None) -> str:
    """A Parse URL as the control page shows it: never its password."""
    if not url:
        return "each demo workspace's sidecar route, or nowhere"
    return without_credentials(url)[0]


def summary(ctx: SandboxContext) -> list[Section]:
    state = read_state(ctx)
    target = state["webhooks"].get("") or ctx.webhook_targets.get(NAME) or "nowhere"
    rows = [
        [when(m["sent_at"]), address(m["to"]), message_link(m), m["status"]]
        for m in reversed(list(state["messages"].values())[-50:])
    ]
    note = (
        f'<a href="{PREFIX}/_pages/mailbox">Mailbox</a>. Demo API key '
        f"<code>{DEMO_API_KEY}</code> (POST {PREFIX}/_sandbox/api_keys for another). "
        f"Event webhook to <code>{html.escape(target)}</code>, verification key "
        f"<code>{state['public_key']}</code>. Replies (a message's Reply button) go by "
        "Inbound Parse to "
        f"<code>{html.escape(_without_credentials(state.get('inbound_parse', {}).get('')))}"
        "</code> (POST /sendgrid/_sandbox/inbound_parse to set it)."
    )
    return [Section("SendGrid messages", ["sent", "to", "subject", "status"], rows, note)]
