"""The preferences page ``/preferences/{token}``, linked from every e-mail's footer: which
optional groups (offers and proposals, reminders) the message's address gets from the
workspace, and a change per group (unsubscribe, resubscribe).

The token is the unsubscribe link's kind (the message's and workspace's ids, nothing else),
signed under a salt of its own, and works as long (400 days: an old message's footer must
still work). Reading never changes anything (mail scanners fetch every link); a change is a
POST carrying the token. A resubscribe deletes only that group's suppression: an ``all``
suppression (a hard bounce, a spam report) is not the person's to lift here, and the page says
so. Each change is an ``engagement_events`` row (source ``preferences``) when the message was
about the person it was sent to (a lead, client or buyer at that address), like SendGrid's
``group_unsubscribe`` and ``group_resubscribe`` events.

Tested in tests/api/test_preferences.py (through the sidecar).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.db import conflict_insert
from backend.email import purposes, unsubscribe
from backend.email.sequences.stops import stop_after_unsubscribe
from backend.email.service import normalise, suppress
from backend.security import tokens
from models import (
    Buyer,
    Client,
    EmailMessage,
    EmailSuppression,
    EngagementEvent,
    Lead,
    utcnow,
)

SALT = "hub.email-preferences.v1"
MAX_AGE = unsubscribe.MAX_AGE
SOURCE = "preferences"
REASON = unsubscribe.REASON
UNSUBSCRIBE = "unsubscribe"
RESUBSCRIBE = "resubscribe"
_PEOPLE: dict[str, Any] = {"lead": Lead, "client": Client, "buyer": Buyer}


def token_for(message_id: int, workspace_id: int) -> str:
    secret = get_settings().secret_key.get_secret_value()
    return tokens.sign(secret, salt=SALT, data={"m": message_id, "w": workspace_id})


def url_for(message_id: int, workspace_id: int) -> str:
    base = get_settings().public_sidecar_url.rstrip("/")
    return f"{base}/preferences/{token_for(message_id, workspace_id)}"


@dataclass(frozen=True)
class Group:
    name: str
    label: str
    subscribed: bool


@dataclass(frozen=True)
class Preferences:
    """An address's optional groups in one workspace, as the page shows them."""

    message_id: int
    workspace_id: int
    email: str
    subject_type: str | None
    subject_id: int | None
    groups: tuple[Group, ...]
    # A hard bounce or a spam report: nothing but transactional mail goes, and not here to lift.
    blocked: bool


def _message(session: Session, token: str) -> EmailMessage:
    secret = get_settings().secret_key.get_secret_value()
    try:
        data = tokens.verify(secret, token, salt=SALT, max_age=MAX_AGE)
    except tokens.TokenExpired:
        raise tokens.TokenExpired(
            "This link has expired: use the link in a more recent e-mail."
        ) from None
    except tokens.TokenInvalid:
        raise tokens.TokenInvalid(
            "This link is not valid: it may have been changed or cut short."
        ) from None
    try:
        message_id, workspace_id = int(data["m"]), int(data["w"])
    except (KeyError, TypeError, ValueError):
        raise tokens.TokenInvalid("This link is not valid.") from None
    message = session.scalars(
        select(EmailMessage).where(
            EmailMessage.id == message_id, EmailMessage.workspace_id == workspace_id
        )
    ).first()
    if message is None:
        raise tokens.TokenInvalid("This link no longer works: the message was deleted.")
    return message


def _state(session: Session, message: EmailMessage) -> Preferences:
    suppressed = set(
        session.scalars(
            select(EmailSuppression.purpose_group).where(
                EmailSuppression.workspace_id == message.workspace_id,
                EmailSuppression.email == message.to_email,
            )
        )
    )
    return Preferences(
        message_id=message.id,
        workspace_id=message.workspace_id,
        email=message.to_email,
        subject_type=message.subject_type,
        subject_id=message.subject_id,
        groups=tuple(
            Group(g, purposes.GROUP_LABELS[g], g not in suppressed)
            for g in purposes.OPTIONAL_GROUPS
        ),
        blocked=purposes.ALL in suppressed,
    )


def load(session: Session, token: str) -> Preferences:
    """What the page shows; changes nothing. ``tokens.TokenError`` for a bad link."""
    return _state(session, _message(session, token))


def change(
    session: Session, token: str, *, group: str, action: str, at: dt.datetime | None = None
) -> Preferences:
    """Unsubscribe the address from ``group`` or resubscribe it (never lifting an ``all``
    suppression); the state after. ``ValueError`` for a group or action not offered."""
    if group not in purposes.OPTIONAL_GROUPS:
        raise ValueError(f"{group!r} is not a group you can choose")
    if action not in (UNSUBSCRIBE, RESUBSCRIBE):
        raise ValueError(f"{action!r} is not a change this page makes")
    message = _message(session, token)
    before = _state(session, message)
    was_subscribed = next(g.subscribed for g in before.groups if g.name == group)
    if action == UNSUBSCRIBE and was_subscribed:
        suppress(
            session,
            workspace_id=message.workspace_id,
            email=message.to_email,
            groups=(group,),
            reason=REASON,
            message_id=message.id,
        )
        _engagement(session, message, "email.group_unsubscribed", group, at or utcnow())
        stop_after_unsubscribe(
            session, workspace_id=message.workspace_id, message_id=message.id, at=at or utcnow()
        )
    elif action == RESUBSCRIBE and not was_subscribed:
        session.execute(
            delete(EmailSuppression).where(
                EmailSuppression.workspace_id == message.workspace_id,
                EmailSuppression.email == message.to_email,
                EmailSuppression.purpose_group == group,
                # Never ``all`` (the filter above says so too): a bounce or a spam report stays.
                EmailSuppression.purpose_group != purposes.ALL,
            )
        )
        _engagement(session, message, "email.group_resubscribed", group, at or utcnow())
    return _state(session, message)


def _about_recipient(session: Session, message: EmailMessage) -> bool:
    """The message concerns the person it was sent to (not a team member told about a lead)."""
    model = _PEOPLE.get(message.subject_type or "")
    if model is None or message.subject_id is None:
        return False
    email = session.scalar(
        select(model.email).where(
            model.workspace_id == message.workspace_id, model.id == message.subject_id
        )
    )
    return email is not None and normalise(email) == message.to_email


def _engagement(
    session: Session, message: EmailMessage, name: str, group: str, at: dt.datetime
) -> None:
    if not _about_recipient(session, message):
        return
    assert message.subject_type is not None and message.subject_id is not None
    session.execute(
        conflict_insert(session, EngagementEvent)
        .values(
            workspace_id=message.workspace_id,
            source=SOURCE,
            # Each change is its own event (a change is a POST that changed something).
            source_event_id=uuid.uuid4().hex,
            subject_type=message.subject_type,
            subject_id=message.subject_id,
            name=name,
            occurred_at=at,
            properties={"purpose": message.purpose, "message_id": message.id, "group": group},
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["workspace_id", "source", "source_event_id"])
    )
