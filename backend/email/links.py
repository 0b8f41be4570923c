"""Signed links ``/x/{token}``: a page made for one person (today a proposal template's
content for a lead), reached from an e-mail.

The token is signed with ``HUB_SECRET_KEY`` under a salt of its own (itsdangerous, timestamped)
and carries opaque ids only: the workspace, the link's kind, the person it was made for
(``lead`` and an id), the thing it shows (a proposal template's id) and the message it was
mailed in, if known. Never an address or a name: links get forwarded, pasted and logged.

Each kind has its own lifetime (``KINDS``): a proposal link lasts 30 days, because a quote's
prices and dates go stale within weeks and a link that still worked months later would show
terms the business no longer offers. An expired link is not a dead end: its page offers a
fresh one by e-mail (``request_fresh``), sent only to the address of the person the link was
made for, and only for a link we signed (an expired token's signature is still checked; a
tampered one is trusted for nothing).

Consent: what the page shows beyond what the person asked for (other offers of the business)
is marketing, shown only when ``may_show_marketing`` says so.

A visit is an ``engagement_events`` row (source ``link``, name ``link.visited``), one per token
per minute: a reload or a double click is one visit, a return visit later is another. A mail
scanner following the link cannot be told from the person and counts too (as with SendGrid's
clicks). A visit to a proposal moves the lead to ``proposal_viewed`` (forward only).

Tested in tests/email/test_links.py and, through the sidecar, tests/api/test_links.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.db import conflict_insert
from backend.email import purposes, service
from backend.email.events import LEAD_RANK
from backend.security.tokens import TokenExpired, TokenInvalid
from models import (
    EmailSuppression,
    EngagementEvent,
    Lead,
    ProposalTemplate,
    Workspace,
    utcnow,
)

SALT = "hub.email-link.v1"
SOURCE = "link"
VISITED = "link.visited"
FRESH_PURPOSE = "fresh_link"
DAY = 24 * 3600
# How many of the business's other offers a page shows (when consent allows).
OFFERS = 3


@dataclass(frozen=True)
class Kind:
    """A kind of link: whom it may be made for and how long it works."""

    name: str
    max_age: int
    subject_types: tuple[str, ...]


KINDS: dict[str, Kind] = {
    # A quote goes stale within weeks (prices, dates); the issue 16 pipeline adds its proposal
    # and contract pages under /p/.
    "proposal": Kind("proposal", 30 * DAY, ("lead",)),
}


@dataclass(frozen=True)
class Link:
    """What a token says: opaque ids only."""

    workspace_id: int
    kind: str
    subject_type: str
    subject_id: int
    target_id: int
    message_id: int | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "w": self.workspace_id,
            "k": self.kind,
            "s": self.subject_type,
            "i": self.subject_id,
            "t": self.target_id,
            "m": self.message_id,
        }

    @classmethod
    def from_payload(cls, data: Any) -> Link:
        try:
            link = cls(
                workspace_id=int(data["w"]),
                kind=str(data["k"]),
                subject_type=str(data["s"]),
                subject_id=int(data["i"]),
                target_id=int(data["t"]),
                message_id=None if data.get("m") is None else int(data["m"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise LinkInvalid() from None
        kind = KINDS.get(link.kind)
        if kind is None or link.subject_type not in kind.subject_types:
            raise LinkInvalid()
        return link


class LinkInvalid(TokenInvalid):
    """Changed, made up, or not one of ours: nothing in it is trusted."""

    def __init__(self) -> None:
        super().__init__("This link is not valid: it may have been changed or cut short.")


class LinkExpired(TokenExpired):
    """Signed by us and too old: what it named is known (its signature is still checked), so
    a fresh one can be mailed to the person it was made for."""

    def __init__(self, link: Link) -> None:
        super().__init__("This link has expired.")
        self.link = link


class LinkGone(TokenInvalid):
    """Signed by us, but what it shows (or whom for) is no longer there in its workspace."""

    def __init__(self) -> None:
        super().__init__("What this link showed is no longer available.")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_settings().secret_key.get_secret_value(), salt=SALT)


def token_for(link: Link) -> str:
    if link.kind not in KINDS:
        raise ValueError(f"unknown link kind {link.kind!r}; add it to backend/email/links.py")
    return _serializer().dumps(link.payload())


def url_for(link: Link) -> str:
    base = get_settings().public_sidecar_url.rstrip("/")
    return f"{base}/x/{token_for(link)}"


def read(token: str, *, now: dt.datetime | None = None) -> Link:
    """The link a token names, or ``LinkInvalid`` (tampered, made up, another salt's) or
    ``LinkExpired`` (ours, past its kind's lifetime, with the link it named).

    The signature is checked before anything in the payload is looked at, whatever its age:
    an expired token is read only because its signature holds."""
    try:
        data, signed_at = _serializer().loads(token, max_age=None, return_timestamp=True)
    except BadData:  # a bad signature or timestamp, or a payload that does not decode
        raise LinkInvalid() from None
    link = Link.from_payload(data)
    age = ((now or utcnow()) - signed_at).total_seconds()
    if age > KINDS[link.kind].max_age:
        raise LinkExpired(link)
    return link


# -- consent --------------------------------------------------------------------------------


def may_show_marketing(*, marketing_consent: bool, suppressed_groups: Collection[str]) -> bool:
    """Whether a link's page may show marketing (the business's other offers) to its person.

    Only with their consent (the lead form's box, ``Lead.marketing_consent``) and only while
    their address is not suppressed for marketing (an unsubscribe from offers and proposals)
    or for everything (a hard bounce, a spam report): an unsubscribe withdraws consent given
    earlier. Otherwise the page shows only what the link was sent for (the proposal they asked
    about) and generic words in place of the offers ("opted-out contacts see generic
    content"). A person without a consent field (a client, a buyer) counts as not consenting.
    """
    blocked = {purposes.MARKETING, purposes.ALL} & set(suppressed_groups)
    return marketing_consent and not blocked


def suppressed_groups(session: Session, *, workspace_id: int, email: str) -> set[str]:
    return set(
        session.scalars(
            select(EmailSuppression.purpose_group).where(
                EmailSuppression.workspace_id == workspace_id,
                EmailSuppression.email == service.normalise(email),
            )
        )
    )


# -- the page -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    title: str
    summary: str


@dataclass(frozen=True)
class Page:
    """What ``/x/{token}`` shows. ``offers`` is marketing: empty unless consent allows."""

    business_name: str
    recipient_name: str
    title: str
    body: str
    marketing: bool
    offers: list[Offer] = field(default_factory=list)


@dataclass(frozen=True)
class _Found:
    workspace: Workspace
    lead: Lead
    template: ProposalTemplate


def _find(session: Session, link: Link) -> _Found:
    """The link's workspace, person and target, each looked up in the token's workspace only:
    a token naming another workspace's lead or template finds nothing."""
    workspace = session.get(Workspace, link.workspace_id)
    lead = session.scalars(
        select(Lead).where(Lead.workspace_id == link.workspace_id, Lead.id == link.subject_id)
    ).first()
    template = session.scalars(
        select(ProposalTemplate).where(
            ProposalTemplate.workspace_id == link.workspace_id,
            ProposalTemplate.id == link.target_id,
            # Unpublished: the business withdrew it.
            ProposalTemplate.published.is_(True),
        )
    ).first()
    if workspace is None or lead is None or template is None:
        raise LinkGone()
    return _Found(workspace, lead, template)


def _offers(session: Session, found: _Found) -> list[Offer]:
    rows = session.scalars(
        select(ProposalTemplate)
        .where(
            ProposalTemplate.workspace_id == found.workspace.id,
            ProposalTemplate.published.is_(True),
            ProposalTemplate.id != found.template.id,
        )
        .order_by(ProposalTemplate.id)
        .limit(OFFERS)
    )
    return [Offer(row.title, _summary(row.body)) for row in rows]


def _summary(body: str, limit: int = 160) -> str:
    first = body.strip().split("\n", 1)[0]
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def visit(session: Session, token: str, *, at: dt.datetime | None = None) -> Page:
    """Open a link: its page (consent applied), the visit recorded, the lead moved to
    ``proposal_viewed``. ``LinkInvalid`` / ``LinkExpired`` / ``LinkGone`` otherwise, having
    changed nothing."""
    at = at or utcnow()
    link = read(token, now=at)
    found = _find(session, link)
    lead = found.lead
    marketing = may_show_marketing(
        marketing_consent=bool(lead.marketing_consent),
        suppressed_groups=suppressed_groups(
            session, workspace_id=link.workspace_id, email=lead.email
        ),
    )
    _record_visit(session, link, token, at=at, marketing=marketing)
    current = LEAD_RANK.get(lead.status)
    if current is not None and current < LEAD_RANK["proposal_viewed"]:
        lead.status = "proposal_viewed"
    return Page(
        business_name=found.workspace.name,
        recipient_name=lead.name,
        title=found.template.title,
        body=found.template.body,
        marketing=marketing,
        offers=_offers(session, found) if marketing else [],
    )


def visit_key(token: str, at: dt.datetime) -> str:
    """One visit per token per minute (the engagement row's ``source_event_id``)."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:48]
    return f"{digest}:{int(at.timestamp()) // 60}"


def _record_visit(
    session: Session, link: Link, token: str, *, at: dt.datetime, marketing: bool
) -> None:
    properties: dict[str, Any] = {
        "kind": link.kind,
        "target_id": link.target_id,
        "marketing_shown": marketing,
    }
    if link.message_id is not None:
        properties["message_id"] = link.message_id
    session.execute(
        conflict_insert(session, EngagementEvent)
        .values(
            workspace_id=link.workspace_id,
            source=SOURCE,
            source_event_id=visit_key(token, at),
            subject_type=link.subject_type,
            subject_id=link.subject_id,
            name=VISITED,
            occurred_at=at,
            properties=properties,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["workspace_id", "source", "source_event_id"])
    )


# -- a fresh link by e-mail -----------------------------------------------------------------


def request_fresh(
    session: Session, token: str, email: str, *, at: dt.datetime | None = None
) -> bool:
    """Someone asks for a fresh link in place of ``token``: mail one (a ``fresh_link``
    message) if the token is ours (expired or not) and ``email`` is the address of the person
    it was made for, in its workspace. Whether one was queued is for tests and logs only: the
    page answers the same either way, so it tells nobody which addresses we know.

    A tampered token names nothing we trust, so nothing is mailed. Several asks within the
    hour send one message (its dedupe key)."""
    at = at or utcnow()
    try:
        link = read(token, now=at)
    except LinkExpired as expired:
        link = expired.link
    except LinkInvalid:
        return False
    try:
        found = _find(session, link)
    except LinkGone:
        return False
    address = service.normalise(email)
    if not address or address != service.normalise(found.lead.email):
        return False
    fresh = Link(
        workspace_id=link.workspace_id,
        kind=link.kind,
        subject_type=link.subject_type,
        subject_id=link.subject_id,
        target_id=link.target_id,
    )
    service.queue_email(
        session,
        workspace_id=link.workspace_id,
        purpose=FRESH_PURPOSE,
        to_email=found.lead.email,
        to_name=found.lead.name,
        subject_type=link.subject_type,
        subject_id=link.subject_id,
        context={
            "business_name": found.workspace.name,
            "recipient_name": found.lead.name,
            "link_title": found.template.title,
            "link_url": url_for(fresh),
            "valid_days": KINDS[link.kind].max_age // DAY,
        },
        dedupe_key=(
            f"fresh-link:{link.kind}:{link.subject_type}:{link.subject_id}:{link.target_id}"
            f":{at:%Y%m%d%H}"
        ),
    )
    return True
