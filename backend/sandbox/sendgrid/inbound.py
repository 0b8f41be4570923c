"""SendGrid Inbound Parse in the sandbox: the recipient of a message in the mailbox replies
(the message page's Reply form), and the sandbox posts the reply to the Parse URL as SendGrid
does: multipart/form-data with SendGrid's default fields (headers, dkim, to, from, subject,
text, html, sender_ip, SPF, envelope, charsets, attachments, and attachment-info plus the
files when the reply has an attachment), delivered and retried like the Event Webhook.

Where replies go: ``POST /sendgrid/_sandbox/inbound_parse {"url": ...}`` for the caller's API
key (with its Authorization) or for the whole sandbox (without); a URL's user and password are
sent as basic auth, as SendGrid does, and kept out of the delivery log. Without one, a demo
workspace's key posts to the product's route for that workspace (``webhook_targets
["sendgrid_inbound"]``, set by `python -m backend.sandbox`) with the demo's fixed secret.

Tested in tests/sandbox/test_sendgrid_inbound.py.
"""

from __future__ import annotations

import base64
import email.utils
import json
import time
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from backend.sandbox.context import SandboxContext
from backend.sandbox.demo_accounts import DEMO_WORKSPACES
from backend.sandbox.sendgrid.mailbox import NAME, Message, seeded
from backend.sandbox.store import new_id

TARGET = "sendgrid_inbound"
DEFAULT_REPLY = "Thanks, sounds good — can we talk Tuesday?"
# SendGrid's own multipart boundary.
BOUNDARY = "xYzZY"
SENDER_IP = "203.0.113.25"
# A tiny JPEG's bytes (the start of one): what "with an attachment" attaches.
PHOTO = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffdb") + b"\x00" * 64 + b"\xff\xd9"


def parse_url(ctx: SandboxContext, message: Message) -> str | None:
    """Where a reply to ``message`` is posted: its API key's Parse URL, the sandbox's, or the
    demo workspace's default; None when nothing says."""
    with ctx.store.section(NAME) as section:
        hooks: dict[str, str] = dict(seeded(section)["inbound_parse"])
    url = hooks.get(message["api_key"]) or hooks.get("")
    if url:
        return url
    target = ctx.webhook_targets.get(TARGET)
    for demo in DEMO_WORKSPACES:
        if target and demo.sendgrid_api_key == message["api_key"]:
            parts = urlsplit(f"{target.rstrip('/')}/{quote(demo.slug, safe='')}")
            netloc = f"inbound:{quote(demo.inbound_parse_token, safe='')}@{parts.netloc}"
            return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return None


def without_credentials(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its user and password, and the basic-auth header they make."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    user = unquote(parts.username or "")
    password = unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    plain = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return plain, {"Authorization": f"Basic {token}"}


def _person(who: dict[str, Any]) -> str:
    return email.utils.formataddr((who.get("name") or "", who["email"]))


def reply_fields(
    message: Message, text: str, *, attachment: bool = False
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str, bytes]], str]:
    """SendGrid's form fields for the recipient's reply to ``message``, its files
    ((field, filename, type, bytes)) and its Message-ID."""
    replier = message["to"]
    answered = message.get("reply_to") or message["from"]
    domain = replier["email"].rpartition("@")[2] or "example.org"
    message_id = f"<{new_id('', 20)}@{domain}>"
    original_id = f"<{message['x_message_id']}@sandbox.sendgrid.net>"
    date = email.utils.formatdate(time.time())
    subject = str(message.get("subject") or "")
    subject = subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()
    quoted = "\n".join(f"> {line}" for line in str(message.get("text") or "").splitlines())
    sent = email.utils.formatdate(message["sent_at"])
    body = f"{text}\n\nOn {sent}, {_person(message['from'])} wrote:\n{quoted}\n"
    html = (
        f'<div dir="ltr">{_escape(text)}</div><br><div class="gmail_quote">On {sent}, '
        f"{_escape(_person(message['from']))} wrote:<br><blockquote>"
        f"{_escape(str(message.get('text') or ''))}</blockquote></div>"
    )
    alternative = new_id("000000000000", 16)
    headers = "\n".join(
        [
            f"Received: from mail.{domain} ({SENDER_IP}) by mx.sendgrid.net with ESMTP id "
            f"{new_id('', 22)} for <{answered['email']}>; {date}",
            f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=mail; "
            f"h=from:date:message-id:subject:to; bh={new_id('', 43)}=; b={new_id('', 86)}",
            "MIME-Version: 1.0",
            f"References: {original_id}",
            f"In-Reply-To: {original_id}",
            f"From: {_person(replier)}",
            f"Date: {date}",
            f"Message-ID: {message_id}",
            f"Subject: {subject}",
            f"To: {_person(answered)}",
            "Content-Type: "
            + (
                f'multipart/mixed; boundary="{alternative}"'
                if attachment
                else f'multipart/alternative; boundary="{alternative}"'
            ),
            "",
        ]
    )
    fields = [
        ("headers", headers),
        ("dkim", f"{{@{domain} : pass}}"),
        ("to", _person(answered)),
        ("html", html),
        ("from", _person(replier)),
        ("text", body),
        ("sender_ip", SENDER_IP),
        ("envelope", json.dumps({"to": [answered["email"]], "from": replier["email"]})),
        ("attachments", "1" if attachment else "0"),
        ("subject", subject),
    ]
    files: list[tuple[str, str, str, bytes]] = []
    if attachment:
        info = {"attachment1": {"filename": "photo.jpg", "name": "photo.jpg", "type": "image/jpeg"}}
        fields.append(("attachment-info", json.dumps(info)))
        files.append(("attachment1", "photo.jpg", "image/jpeg", PHOTO))
    charsets = {name: "UTF-8" for name in ("to", "html", "subject", "from", "text")}
    fields += [("charsets", json.dumps(charsets)), ("SPF", "pass")]
    return fields, files, message_id


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def multipart(
    fields: list[tuple[str, str]], files: list[tuple[str, str, str, bytes]]
) -> tuple[bytes, str]:
    """The form as SendGrid encodes it, and its Content-Type."""
    out = bytearray()
    for name, value in fields:
        out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode("utf-8") + b"\r\n"
    for name, filename, kind, data in files:
        out += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {kind}\r\n\r\n'
        ).encode()
        out += data + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={BOUNDARY}"


def reply(ctx: SandboxContext, message_id: str, text: str, *, attachment: bool = False) -> str:
    """Post the recipient's reply to ``message_id``'s sender; the URL it goes to (without its
    credentials). LookupError: no such message; ValueError: no Parse URL is configured."""
    with ctx.store.section(NAME) as section:
        message = seeded(section)["messages"].get(message_id)
        if message is None:
            raise LookupError(message_id)
        message = json.loads(json.dumps(message))
    url = parse_url(ctx, message)
    if url is None:
        raise ValueError(
            'no Inbound Parse URL: POST {"url": ...} to /sendgrid/_sandbox/inbound_parse'
        )
    fields, files, reply_id = reply_fields(message, text, attachment=attachment)
    body, content_type = multipart(fields, files)
    plain, auth = without_credentials(url)
    headers = {"Content-Type": content_type, **auth}
    with ctx.store.section(NAME) as section:
        stored = seeded(section)["messages"].get(message_id)
        if stored is not None:
            stored.setdefault("replies", []).append(
                {"at": int(time.time()), "text": text, "message_id": reply_id, "url": plain}
            )
    ctx.deliverer.send(NAME, plain, body, lambda _body: dict(headers), "inbound parse (reply)")
    return plain
