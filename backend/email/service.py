"""Queueing an e-mail: the tracking row (``EmailMessage``) and the outbox job that sends it,
in the caller's transaction; an address suppressed for the purpose's group is recorded as
skipped, with the reason, and never sent. Suppressing an address (an unsubscribe here; bounces
and spam reports later, from SendGrid's events).

Tested in tests/email/test_service.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db import conflict_insert
from backend.email import purposes
from backend.platform import outbox
from models import EmailMessage, EmailStatus, EmailSuppression, EmailTemplateChoice

SEND_KIND = "email.send"
SENDGRID_TEMPLATE_PREFIX = "sendgrid:"


def normalise(address: str) -> str:
    return address.strip().lower()


def send_key(message_id: int) -> str:
    """The send job's idempotency key: one job per message (a job sends its message and the
    batch it heads, backend/email/send.py)."""
    return f"{SEND_KIND}:{message_id}"


def template_for(session: Session, *, workspace_id: int, purpose: str) -> str:
    """The repository's template for the purpose, or the workspace's SendGrid dynamic one."""
    chosen = session.scalars(
        select(EmailTemplateChoice.sendgrid_template_id).where(
            EmailTemplateChoice.workspace_id == workspace_id,
            EmailTemplateChoice.purpose == purpose,
        )
    ).first()
    return f"{SENDGRID_TEMPLATE_PREFIX}{chosen}" if chosen else purpose


def suppressions(
    session: Session, *, workspace_id: int, emails: Iterable[str], purpose: str
) -> dict[str, EmailSuppression]:
    """The suppression that stops each of ``emails`` getting mail of ``purpose``, if any
    (``all`` first: a bounce says more than an unsubscribe)."""
    blocking = purposes.groups_blocking(purpose)
    found: dict[str, EmailSuppression] = {}
    rows = session.scalars(
        select(EmailSuppression).where(
            EmailSuppression.workspace_id == workspace_id,
            EmailSuppression.email.in_(list(set(emails))),
            EmailSuppression.purpose_group.in_(blocking),
        )
    )
    for row in rows:
        current = found.get(row.email)
        if current is None or row.purpose_group == purposes.ALL:
            found[row.email] = row
    return found


def skip_reason(suppression: EmailSuppression) -> str:
    group = suppression.purpose_group
    what = "all e-mail" if group == purposes.ALL else purposes.GROUP_LABELS.get(group, group)
    when = suppression.created_at.date().isoformat() if suppression.created_at else "earlier"
    return f"Suppressed ({suppression.reason}, {what}) since {when}"


def queue_email(
    session: Session,
    *,
    workspace_id: int,
    purpose: str,
    to_email: str,
    to_name: str | None,
    subject_type: str | None,
    subject_id: int | None,
    context: dict[str, Any],
    dedupe_key: str | None,
    skip: str | None = None,
    sequence_step_id: int | None = None,
) -> EmailMessage:
    """Record a message and queue its send, in the caller's transaction. A repeated
    ``dedupe_key`` returns the message already recorded and queues nothing. ``skip``: a reason
    the caller already knows not to send (no marketing consent): recorded skipped with it.
    ``sequence_step_id``: the sequence step it is sent for (backend/email/sequences/)."""
    purposes.purpose(purpose)  # refuses an unknown purpose
    address = normalise(to_email)
    if not address or "@" not in address:
        raise ValueError("an e-mail needs a recipient address")
    if dedupe_key is not None:
        existing = _by_dedupe_key(session, workspace_id, dedupe_key)
        if existing is not None:
            return existing
    suppressed = suppressions(session, workspace_id=workspace_id, emails=[address], purpose=purpose)
    reason = skip_reason(suppressed[address]) if address in suppressed else skip
    values: dict[str, Any] = dict(
        workspace_id=workspace_id,
        purpose=purpose,
        template=template_for(session, workspace_id=workspace_id, purpose=purpose),
        to_email=address,
        to_name=(to_name or "").strip()[:120] or None,
        subject_type=subject_type,
        subject_id=subject_id,
        context=dict(context),
        dedupe_key=dedupe_key,
        status=(EmailStatus.SKIPPED if reason else EmailStatus.QUEUED).value,
        skip_reason=reason,
        sequence_step_id=sequence_step_id,
    )
    # Two callers with the same key at once: one row, and the other gets it.
    stmt = (
        conflict_insert(session, EmailMessage)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["workspace_id", "dedupe_key"])
        .returning(EmailMessage.id)
    )
    message_id = session.execute(stmt).scalar()
    if message_id is None:
        assert dedupe_key is not None
        existing = _by_dedupe_key(session, workspace_id, dedupe_key)
        assert existing is not None
        return existing
    message = session.get_one(EmailMessage, message_id)
    if reason is None:
        outbox.enqueue(
            session,
            kind=SEND_KIND,
            payload={"message_id": message_id},
            idempotency_key=send_key(message_id),
            workspace_id=workspace_id,
        )
    return message


def _by_dedupe_key(session: Session, workspace_id: int, key: str) -> EmailMessage | None:
    return session.scalars(
        select(EmailMessage).where(
            EmailMessage.workspace_id == workspace_id, EmailMessage.dedupe_key == key
        )
    ).first()


def suppress(
    session: Session,
    *,
    workspace_id: int,
    email: str,
    groups: Iterable[str],
    reason: str,
    message_id: int | None = None,
) -> None:
    """Stop mail of ``groups`` to the address from this workspace (idempotent)."""
    for group in groups:
        session.execute(
            conflict_insert(session, EmailSuppression)
            .values(
                workspace_id=workspace_id,
                email=normalise(email),
                purpose_group=group,
                reason=reason,
                message_id=message_id,
            )
            .on_conflict_do_nothing(index_elements=["workspace_id", "email", "purpose_group"])
        )
