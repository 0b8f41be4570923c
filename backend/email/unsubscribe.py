"""One-click unsubscribes (RFC 8058): each message's signed link, its ``List-Unsubscribe``
headers, and what following the link does (the address stops getting the message's purpose
group from the workspace; a transactional message's link stops every optional group, since
receipts and contracts cannot be refused).

The token carries only the message's id and workspace (opaque ids, no address), signed with
``HUB_SECRET_KEY`` under a salt of its own, so no other token of ours is accepted here.

Tested in tests/api/test_unsubscribe.py (through the sidecar) and tests/email/test_send.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.email import purposes
from backend.email.sequences.stops import stop_after_unsubscribe
from backend.email.service import suppress
from backend.security import tokens
from models import EmailMessage, utcnow

SALT = "hub.email-unsubscribe.v1"
# Mailbox providers and the law (CAN-SPAM: 30 days) expect an old message's link to work.
MAX_AGE = 400 * 24 * 3600
REASON = "unsubscribe"


def token_for(message_id: int, workspace_id: int) -> str:
    secret = get_settings().secret_key.get_secret_value()
    return tokens.sign(secret, salt=SALT, data={"m": message_id, "w": workspace_id})


def url_for(message_id: int, workspace_id: int) -> str:
    base = get_settings().public_sidecar_url.rstrip("/")
    return f"{base}/u/{token_for(message_id, workspace_id)}"


def headers_for(url: str) -> dict[str, str]:
    """RFC 2369's link and RFC 8058's one-click POST (Gmail and Yahoo require both from bulk
    senders)."""
    return {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


@dataclass(frozen=True)
class Target:
    """What a link unsubscribes: the message's address from these groups."""

    message_id: int
    workspace_id: int
    email: str
    groups: tuple[str, ...]

    @property
    def what(self) -> str:
        return " and ".join(purposes.GROUP_LABELS[g] for g in self.groups)


def target(session: Session, token: str) -> Target:
    """The link's message, or ``tokens.TokenError`` (tampered, expired, or its message is
    gone with its workspace)."""
    secret = get_settings().secret_key.get_secret_value()
    data = tokens.verify(secret, token, salt=SALT, max_age=MAX_AGE)
    try:
        message_id, workspace_id = int(data["m"]), int(data["w"])
    except (KeyError, TypeError, ValueError):
        raise tokens.TokenInvalid("This link is not valid.") from None
    row = session.execute(
        select(EmailMessage.to_email, EmailMessage.purpose).where(
            EmailMessage.id == message_id, EmailMessage.workspace_id == workspace_id
        )
    ).first()
    if row is None:
        raise tokens.TokenInvalid("This link no longer works: the message was deleted.")
    return Target(message_id, workspace_id, row.to_email, purposes.unsubscribe_groups(row.purpose))


def unsubscribe(session: Session, token: str, *, at: dt.datetime | None = None) -> Target:
    """Follow a link: suppress its address for its groups (again: nothing changes) and stop
    the follow-ups of the lead it was about."""
    found = target(session, token)
    suppress(
        session,
        workspace_id=found.workspace_id,
        email=found.email,
        groups=found.groups,
        reason=REASON,
        message_id=found.message_id,
    )
    stop_after_unsubscribe(
        session, workspace_id=found.workspace_id, message_id=found.message_id, at=at or utcnow()
    )
    return found
