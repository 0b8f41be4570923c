"""The SendGrid emulator's state and what happens to mail: accepting a send (one mailbox entry per
recipient), API keys, and events recorded on messages and delivered as signed Event Webhook
batches.

Tested in tests/sandbox/test_sendgrid.py and tests/integrations/test_sendgrid.py (through
the sendgrid SDK).
"""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from backend.sandbox.context import SandboxContext
from backend.sandbox.demo_accounts import DEMO_WORKSPACES
from backend.sandbox.sendgrid import schema
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

Message = dict[str, Any]
EventSpec = tuple[str, str, dict[str, Any]]  # (sg_message_id, event, extra fields)


def render_error(status: int, kind: str, message: str) -> Response:
    return error_response(status, [(message, None)])


def error_response(status: int, problems: list[schema.Problem]) -> JSONResponse:
    errors = [{"message": message, "field": field, "help": None} for message, field in problems]
    return JSONResponse({"errors": errors}, status_code=status)


def seeded(section: dict[str, Any]) -> dict[str, Any]:
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
    # Inbound Parse URLs, the same way (see inbound.py).
    section.setdefault("inbound_parse", {})
    return section


def read_state(ctx: SandboxContext) -> dict[str, Any]:
    """A copy of the section for reading; seeds it (a write) only the first time."""
    state = ctx.store.read(NAME)
    if "signing_key" not in state:
        with ctx.store.section(NAME) as section:
            seeded(section)
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


def is_tracked(message: Message, setting: str) -> bool:
    """SendGrid tracks opens and clicks unless the send turned the setting off."""
    return (message["tracking_settings"].get(setting) or {}).get("enable", True) is not False


def emit(ctx: SandboxContext, specs: list[EventSpec]) -> int:
    """Record events on their messages and queue them as signed batches, one per webhook URL.
    Returns how many of the messages exist."""
    found = 0
    batches: dict[str, list[dict[str, Any]]] = {}
    with ctx.store.section(NAME) as section:
        state = seeded(section)
        pem: str = state["signing_key"]
        hooks: dict[str, str] = state["webhooks"]
        for message_id, kind, extra in specs:
            message = state["messages"].get(message_id)
            if message is None:
                continue
            found += 1
            tracked = {"open": "open_tracking", "click": "click_tracking"}.get(kind)
            if tracked and not is_tracked(message, tracked):
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


def split_messages(payload: dict[str, Any], x_message_id: str, api_key: str) -> list[Message]:
    """One mailbox entry per recipient, as SendGrid gives each recipient its own sg_message_id."""
    content = {c["type"]: c["value"] for c in payload.get("content", [])}
    shared_args = payload.get("custom_args")
    shared_args = shared_args if isinstance(shared_args, dict) else {}
    records: list[Message] = []
    shared_headers = payload.get("headers") or {}
    for personalization in payload["personalizations"]:
        # Substitution tags replaced in the subject and the content, as SendGrid does.
        substitute = _substituter(personalization.get("substitutions") or {})
        for kind in ("to", "cc", "bcc"):
            for recipient in personalization.get(kind, []):
                record: Message = {
                    "id": f"{x_message_id}.filterdrecv-sandbox-{len(records)}.0",
                    "x_message_id": x_message_id,
                    "api_key": api_key,
                    "from": personalization.get("from") or payload["from"],
                    "reply_to": payload.get("reply_to"),
                    "to": recipient,
                    "kind": kind,
                    "subject": substitute(
                        personalization.get("subject") or payload.get("subject", "")
                    ),
                    "text": substitute(content.get("text/plain")),
                    "html": substitute(content.get("text/html")),
                    "headers": {**shared_headers, **(personalization.get("headers") or {})},
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


def _substituter(tags: dict[str, Any]) -> Callable[[Any], Any]:
    def substitute(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        for tag, replacement in tags.items():
            value = value.replace(str(tag), str(replacement))
        return value

    return substitute


def authorize(ctx: SandboxContext, request: Request) -> str | Response:
    """The caller's API key, or SendGrid's 401."""
    header = request.headers.get("authorization", "")
    if not header:
        return error_response(401, [("authorization required", None)])
    scheme, _, key = header.partition(" ")
    # The section, not a copy: read() would copy the whole mailbox on every API call.
    with ctx.store.section(NAME) as section:
        valid = scheme.lower() == "bearer" and key.strip() in seeded(section)["api_keys"]
    return key.strip() if valid else error_response(401, [(BAD_GRANT, None)])
