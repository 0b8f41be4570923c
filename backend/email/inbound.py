"""SendGrid Inbound Parse: replies to our mail, posted by SendGrid to the sidecar
(``POST /webhooks/sendgrid-inbound/{workspace}``, backend/api/webhooks/sendgrid_inbound.py).

- **Who may post**: whoever knows the workspace's ``inbound_parse_token``, a random secret made
  on first need (``ensure_token``) and shown to owners and admins as part of the Parse URL they
  paste into SendGrid. Compared in constant time (``authenticate``).
- **What is kept** (``reply_event``): the sender, the subject, the ids SendGrid's headers carry,
  the SPF and DKIM verdicts and the reply's text, its quoted history cut off and bounded in size.
  Never the HTML part (its text is used only when there is no text part), never an attachment
  (counted, not stored: see docs/DESIGN.md, "Inbound Parse").
- **What a reply does** (``handle``, the inbox handler): a reply from a lead of the workspace
  (by the From address, lower-cased) becomes a ``LeadMessage`` of kind ``reply``, an
  ``engagement_events`` row ``email.replied`` (source ``sendgrid_inbound``, keyed by the
  Message-ID, so the same post twice records one reply), stops the lead's active sequence
  enrolments and moves the lead on to ``engaged`` (forward only). A post from anyone else is
  recorded nowhere: its stored payload is blanked.

Registered in backend/email/jobs.py. Tested in tests/api/webhooks/test_sendgrid_inbound.py.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import hmac
import html
import json
import re
import secrets
from dataclasses import dataclass
from email.parser import HeaderParser
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.db import conflict_insert, session_scope
from backend.email.events import LEAD_RANK
from backend.email.sequences.stops import stop_lead_enrolments
from backend.email.service import normalise
from backend.platform import audit, inbox
from backend.platform.actors import Actor
from models import EngagementEvent, InboundEvent, Lead, LeadMessage, Workspace, utcnow

PROVIDER = "sendgrid_inbound"
EVENT_TYPE = "reply"
SOURCE = "sendgrid_inbound"
ROUTE = "/webhooks/sendgrid-inbound"
# The user name in the Parse URL's basic auth: any name is accepted, only the password counts.
BASIC_USER = "inbound"
# A reply's text as kept on the lead: enough for any answer a person types, bounded whatever
# was quoted or pasted below it.
MAX_REPLY_CHARS = 10_000
MAX_SUBJECT_CHARS = 998  # RFC 5322's line limit
_MAX_SLUG = 64
_MAX_TOKEN = 64


class Refused(Exception):
    """The post is not for a workspace that takes replies here; ``status`` 401 or 404."""

    def __init__(self, status: int, reason: str, code: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.code = code


class Malformed(ValueError):
    """The post's fields say nothing we can use; the message names what is missing."""


# -- the secret --------------------------------------------------------------------------------


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 43 characters, 256 bits


def ensure_token(session: Session, workspace_id: int) -> str:
    """The workspace's Inbound Parse secret, made now if it has none (locked, so two
    first looks make one)."""
    workspace = session.scalars(
        select(Workspace).where(Workspace.id == workspace_id).with_for_update()
    ).one()
    if not workspace.inbound_parse_token:
        workspace.inbound_parse_token = new_token()
    return workspace.inbound_parse_token


def parse_url(sidecar_url: str, slug: str, token: str) -> str:
    """The URL to paste into SendGrid's Inbound Parse settings: the token as the basic-auth
    password, so that it never appears in a request line (access logs, proxies)."""
    parts = urlsplit(sidecar_url.rstrip("/"))
    netloc = f"{BASIC_USER}:{quote(token, safe='')}@{parts.netloc}"
    path = f"{parts.path}{ROUTE}/{quote(slug, safe='')}"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def show_parse_url(session: Session, *, actor: Actor, sidecar_url: str) -> str:
    """The workspace's Parse URL for SendGrid's settings (owners and admins: it carries the
    secret), its secret made now if it has none (audited, never the secret itself)."""
    actor.require_change("see the Inbound Parse URL, which holds its secret")
    workspace = session.get_one(Workspace, actor.workspace_id)
    had = bool(workspace.inbound_parse_token)
    token = ensure_token(session, actor.workspace_id)
    if not had:
        audit.record(
            session,
            actor=actor,
            action="workspace.inbound_parse_secret",
            target=f"workspace:{actor.workspace_id}",
            details={"made": True},
        )
    return parse_url(sidecar_url, workspace.slug, token)


def authenticate(engine: Engine, slug: str, token: str | None) -> int:
    """The id of the workspace ``slug`` if ``token`` is its Inbound Parse secret; else Refused."""
    if not slug or len(slug) > _MAX_SLUG or "\x00" in slug:
        raise Refused(404, "unknown workspace", "unknown_workspace")
    with session_scope(engine) as session:
        row = session.execute(
            select(Workspace.id, Workspace.inbound_parse_token).where(Workspace.slug == slug)
        ).first()
    if row is None:
        raise Refused(404, "unknown workspace", "unknown_workspace")
    if not row.inbound_parse_token:
        raise Refused(404, "inbound parse is not set up for this workspace", "not_configured")
    given = (token or "")[: _MAX_TOKEN + 1]
    if not hmac.compare_digest(given.encode(), row.inbound_parse_token.encode()):
        raise Refused(401, "missing or wrong inbound parse secret", "invalid_secret")
    return int(row.id)


# -- what is kept of a post --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    external_id: str
    payload: dict[str, Any]


_QUOTE_STARTS = (
    re.compile(r"^\s*On\b.{0,300}\bwrote:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Am\b.{0,300}\bschrieb.{0,80}:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Le\b.{0,300}\ba écrit\s*:\s*$", re.IGNORECASE),
    re.compile(r"^\s*-{2,}\s*(Original Message|Forwarded message)\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^\s*_{10,}\s*$"),  # Outlook's rule above its "From: ..." block
    re.compile(r"^\s*From:\s.+$"),
    re.compile(r"^\s*>"),
)


def trim_reply(text: str) -> str:
    """The reply without the history mail clients quote below it, bounded in size. Simple
    rules (the usual "On ... wrote:" and ">" lines): a reply typed below the quote keeps all."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for index, line in enumerate(lines):
        if any(pattern.match(line) for pattern in _QUOTE_STARTS):
            kept = "\n".join(lines[:index]).strip()
            if kept:
                text = kept
            break
    text = text.strip()
    if len(text) > MAX_REPLY_CHARS:
        text = text[: MAX_REPLY_CHARS - 1].rstrip() + "…"
    return text


_TAG = re.compile(r"<[^>]*>")
_DROPPED = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BREAKS = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h\d)\b[^>]*>", re.IGNORECASE)
_BLOCKQUOTE = re.compile(r"<blockquote\b.*", re.IGNORECASE | re.DOTALL)


def html_text(markup: str) -> str:
    """A plain reading of an HTML part (for a reply with no text part): quoted blocks cut."""
    markup = _BLOCKQUOTE.sub("", _DROPPED.sub("", markup))
    text = html.unescape(_TAG.sub("", _BREAKS.sub("\n", markup)))
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+", " ", text))


def _clean(value: str) -> str:
    """No NUL (PostgreSQL refuses it) and no lone surrogates."""
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def decode_fields(fields: dict[str, bytes]) -> dict[str, str]:
    """Each field as text in the charset SendGrid's ``charsets`` field names for it (UTF-8
    when it names none or one Python does not know)."""
    try:
        charsets = json.loads(fields.get("charsets", b"{}").decode("utf-8", "replace") or "{}")
    except ValueError:
        charsets = {}
    if not isinstance(charsets, dict):
        charsets = {}
    decoded: dict[str, str] = {}
    for name, raw in fields.items():
        charset = str(charsets.get(name) or "utf-8")
        try:
            decoded[name] = _clean(raw.decode(charset, "replace"))
        except LookupError:
            decoded[name] = _clean(raw.decode("utf-8", "replace"))
    return decoded


def _header_id(value: str | None) -> str | None:
    if not value:
        return None
    value = " ".join(value.split())[:250]
    return value or None


def _date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).isoformat()


def reply_event(workspace_id: int, raw: dict[str, bytes], attachments: int) -> ReplyEvent:
    """What the inbox keeps of a post, and its id (stable for the same mail posted twice)."""
    if "email" in raw and "from" not in raw:
        raise Malformed(
            "raw posts are not supported: turn off 'POST the raw, full MIME message' (Send Raw)"
        )
    fields = decode_fields(raw)
    headers = HeaderParser().parsestr(fields.get("headers", ""), headersonly=True)
    sender = fields.get("from") or str(headers.get("From") or "")
    _, address = email.utils.parseaddr(sender)
    if not address:
        try:
            envelope = json.loads(fields.get("envelope") or "{}")
        except ValueError:
            envelope = {}
        address = str(envelope.get("from") or "") if isinstance(envelope, dict) else ""
    address = normalise(address)
    if "@" not in address or len(address) > 254:
        raise Malformed("the post has no sender address (its 'from' field)")
    text = fields.get("text")
    if not (text or "").strip() and fields.get("html"):
        text = html_text(fields["html"])
    message_id = _header_id(headers.get("Message-ID"))
    payload: dict[str, Any] = {
        "from": address,
        "subject": " ".join(fields.get("subject", "").split())[:MAX_SUBJECT_CHARS],
        "text": trim_reply(text or ""),
        "message_id": message_id,
        "in_reply_to": _header_id(headers.get("In-Reply-To")),
        "date": _date(headers.get("Date")),
        "spf": fields.get("SPF", "")[:40] or None,
        "dkim": fields.get("dkim", "")[:200] or None,
        "attachments": attachments,
    }
    # Keyed by the Message-ID a mail client gives every message (the same reply posted twice,
    # a SendGrid retry, is one event); without one, by what the post says.
    identity = message_id or json.dumps(
        [payload["from"], payload["subject"], payload["date"], payload["text"]]
    )
    digest = hashlib.sha256(identity.encode("utf-8", "replace")).hexdigest()
    # integration_id is None (the secret is the workspace's, not an integration's), so the
    # inbox keeps these unique by provider: the workspace's id scopes the key.
    return ReplyEvent(f"{workspace_id}:{digest}", payload)


# -- what a reply does -------------------------------------------------------------------------


def _at(payload: dict[str, Any], received: dt.datetime) -> dt.datetime:
    """When the lead wrote: the Date header, never later than we received it."""
    try:
        written = dt.datetime.fromisoformat(str(payload.get("date")))
    except ValueError:
        return received
    if written.tzinfo is None:
        return received
    return min(written, received)


def handle(session: Session, event: InboundEvent) -> None:
    """The inbox handler of a reply (see the module's description)."""
    if event.workspace_id is None:
        return
    payload = event.payload
    workspace_id = event.workspace_id
    address = normalise(str(payload.get("from") or ""))
    lead = session.scalars(
        select(Lead)
        .where(Lead.workspace_id == workspace_id, Lead.email == address)
        .with_for_update()
    ).first()
    if lead is None:
        # Not a lead of this workspace: nothing about them is kept, the inbox row included.
        event.payload = {"ignored": "the sender is not a lead of this workspace"}
        return
    received = event.received_at or utcnow()
    at = _at(payload, received)
    source_id = event.external_id.split(":", 1)[-1][:128]
    first = session.execute(
        conflict_insert(session, EngagementEvent)
        .values(
            workspace_id=workspace_id,
            source=SOURCE,
            source_event_id=source_id,
            subject_type="lead",
            subject_id=lead.id,
            name="email.replied",
            occurred_at=at,
            properties={"attachments": int(payload.get("attachments") or 0)},
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["workspace_id", "source", "source_event_id"])
        .returning(EngagementEvent.id)
    ).scalar()
    if first is None:
        return  # this reply was recorded before (posted twice, or a replay)
    subject = str(payload.get("subject") or "")
    body = str(payload.get("text") or "") or "(an empty reply)"
    if subject:
        body = f"{subject}\n\n{body}"
    session.add(
        LeadMessage(workspace_id=workspace_id, lead_id=lead.id, at=at, kind="reply", body=body)
    )
    stop_lead_enrolments(
        session,
        workspace_id=workspace_id,
        lead_id=lead.id,
        reason=f"The lead replied on {at.date().isoformat()}",
        at=at,
    )
    current = LEAD_RANK.get(lead.status)
    if current is not None and current < LEAD_RANK["engaged"]:
        lead.status = "engaged"


HANDLERS: dict[str, inbox.InboxHandler] = {EVENT_TYPE: handle}
