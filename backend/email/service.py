"""Queueing an e-mail: the tracking row (``EmailMessage``) and the outbox job that sends it,
in the caller's transaction; an address suppressed for the purpose's group is recorded as
skipped, with the reason, and never sent. Suppressing an address (an unsubscribe here; bounces
and spam reports later, from SendGrid's events).

Tested in tests/email/test_service.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ARRAY, String, any_, bindparam, select, text
from sqlalchemy.orm import Session

from backend.db import conflict_insert
from backend.email import purposes
from backend.platform import circuits, outbox, turns
from models import (
    EmailMessage,
    EmailStatus,
    EmailSuppression,
    EmailTemplateChoice,
    JobStatus,
    OutboxJob,
    utcnow,
)

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
    wanted = list(set(emails))
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter, not one a address: a send's batch asks about a thousand.
        matches = EmailSuppression.email == any_(bindparam("emails", wanted, ARRAY(String)))
    else:
        matches = EmailSuppression.email.in_(wanted)
    rows = session.scalars(
        select(EmailSuppression).where(
            EmailSuppression.workspace_id == workspace_id,
            matches,
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


@dataclass(frozen=True)
class Recipient:
    """One message of a bulk queueing (``queue_emails``): ``queue_email``'s per-message
    arguments."""

    to_email: str
    to_name: str | None = None
    subject_type: str | None = None
    subject_id: int | None = None
    context: dict[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None


# Rows per statement in ``queue_emails`` (well under both databases' parameter limits).
_BULK_CHUNK = 2000


def queue_emails(
    session: Session,
    *,
    workspace_id: int,
    purpose: str,
    recipients: Sequence[Recipient],
) -> list[int]:
    """``queue_email`` for many messages of one purpose at once, in the caller's transaction:
    the same rows and jobs (addresses normalised, a suppressed address recorded as skipped
    with its reason and given no job, a dedupe key already used, here or earlier in the list,
    giving the message already recorded), in a few multi-row statements rather than a few
    round trips a message. Returns the message ids in the order of ``recipients``."""
    purposes.purpose(purpose)
    addresses = [normalise(r.to_email) for r in recipients]
    if any(not a or "@" not in a for a in addresses):
        raise ValueError("an e-mail needs a recipient address")
    keys = [r.dedupe_key for r in recipients if r.dedupe_key is not None]
    known: dict[str, int] = {}
    for start in range(0, len(keys), _BULK_CHUNK):
        known.update(_ids_by_dedupe_key(session, workspace_id, keys[start : start + _BULK_CHUNK]))
    suppressed: dict[str, EmailSuppression] = {}
    unique_addresses = list(dict.fromkeys(addresses))
    for start in range(0, len(unique_addresses), _BULK_CHUNK):
        suppressed.update(
            suppressions(
                session,
                workspace_id=workspace_id,
                emails=unique_addresses[start : start + _BULK_CHUNK],
                purpose=purpose,
            )
        )
    template = template_for(session, workspace_id=workspace_id, purpose=purpose)
    ids: list[int | None] = [None] * len(recipients)
    # Positions of each new row, and later positions asking for a key seen earlier in the list.
    new: list[tuple[int, dict[str, Any]]] = []
    first_of: dict[str, int] = {}
    repeats: list[tuple[int, str]] = []
    for index, (recipient, address) in enumerate(zip(recipients, addresses, strict=True)):
        key = recipient.dedupe_key
        if key is not None:
            if key in known:
                ids[index] = known[key]
                continue
            if key in first_of:
                repeats.append((index, key))
                continue
            first_of[key] = index
        reason = skip_reason(suppressed[address]) if address in suppressed else None
        new.append(
            (
                index,
                dict(
                    workspace_id=workspace_id,
                    purpose=purpose,
                    template=template,
                    to_email=address,
                    to_name=(recipient.to_name or "").strip()[:120] or None,
                    subject_type=recipient.subject_type,
                    subject_id=recipient.subject_id,
                    context=dict(recipient.context),
                    dedupe_key=key,
                    status=(EmailStatus.SKIPPED if reason else EmailStatus.QUEUED).value,
                    skip_reason=reason,
                ),
            )
        )
    to_send: list[int] = []
    postgres = session.get_bind().dialect.name == "postgresql"
    for start in range(0, len(new), _BULK_CHUNK):
        chunk = new[start : start + _BULK_CHUNK]
        rows = [values for _, values in chunk]
        inserted = _insert_pg(session, rows) if postgres else _insert_messages(session, rows)
        for (index, values), message_id in zip(chunk, inserted, strict=True):
            if message_id is None:
                # Another caller recorded this key since we looked: theirs is the message.
                key = values["dedupe_key"]
                existing = _ids_by_dedupe_key(session, workspace_id, [key])
                ids[index] = existing[key]
                continue
            ids[index] = message_id
            if values["status"] == EmailStatus.QUEUED.value:
                to_send.append(message_id)
    for index, key in repeats:
        ids[index] = ids[first_of[key]]
    _enqueue_sends(session, workspace_id, to_send)
    assert all(i is not None for i in ids)
    return [i for i in ids if i is not None]


def _insert_messages(session: Session, rows: list[dict[str, Any]]) -> list[int | None]:
    """Insert the rows, each key once at most; the new ids in the rows' order (None for a row
    whose dedupe key another transaction took meanwhile)."""
    if not rows:
        return []
    table = EmailMessage.__table__
    now = utcnow()
    rows = [{**row, "created_at": now} for row in rows]
    stmt = (
        conflict_insert(session, table)
        .on_conflict_do_nothing(index_elements=["workspace_id", "dedupe_key"])
        .returning(table.c.id, table.c.to_email, table.c.dedupe_key, sort_by_parameter_order=True)
    )
    returned = session.execute(stmt, rows).all()
    if len(returned) == len(rows):
        return [row.id for row in returned]
    # Some conflicted (a concurrent caller with the same key): match the rest by key.
    by_key = {row.dedupe_key: row.id for row in returned if row.dedupe_key is not None}
    unkeyed = iter(row.id for row in returned if row.dedupe_key is None)
    return [
        by_key.get(row["dedupe_key"]) if row["dedupe_key"] is not None else next(unkeyed)
        for row in rows
    ]


_PG_MESSAGES = """
    INSERT INTO email_messages
        (id, workspace_id, purpose, template, to_email, to_name, subject_type, subject_id,
         context, dedupe_key, status, skip_reason, created_at, open_count, machine_open_count,
         click_count)
    SELECT id, %s, %s, %s, to_email, to_name, subject_type, subject_id, CAST(context AS JSONB),
           dedupe_key, status, skip_reason, %s, 0, 0, 0
    FROM unnest(CAST(%b AS INTEGER[]), CAST(%b AS TEXT[]), CAST(%b AS TEXT[]),
                CAST(%b AS TEXT[]), CAST(%b AS INTEGER[]), CAST(%b AS TEXT[]),
                CAST(%b AS TEXT[]), CAST(%b AS TEXT[]), CAST(%b AS TEXT[]))
        AS incoming (id, to_email, to_name, subject_type, subject_id, context, dedupe_key,
                     status, skip_reason)
    ON CONFLICT (workspace_id, dedupe_key) DO NOTHING
    RETURNING id
"""

_PG_JOBS = """
    INSERT INTO outbox_jobs
        (kind, provider, circuit_key, fair_at, payload, idempotency_key, workspace_id, status,
         attempts, max_attempts, run_after, created_at)
    SELECT %s, %s, %s, fair_at, jsonb_build_object('message_id', message_id),
           %s || message_id, %s, %s, 0, %s, %s, %s
    FROM unnest(CAST(%b AS INTEGER[]), CAST(%b AS TIMESTAMPTZ[])) AS incoming (message_id, fair_at)
    ON CONFLICT (idempotency_key) DO NOTHING
"""


def _insert_pg(session: Session, rows: list[dict[str, Any]]) -> list[int | None]:
    """``_insert_messages`` on PostgreSQL: the ids taken from the sequence first, then every
    row in one statement of arrays (a multi-row VALUES of thousands of rows costs the driver
    more to parse than the database to insert)."""
    if not rows:
        return []
    connection = session.connection()
    ids = [
        row[0]
        for row in connection.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence('email_messages', 'id')) "
            "FROM generate_series(1, %s)",
            (len(rows),),
        )
    ]
    first = rows[0]
    inserted = {
        row[0]
        for row in connection.exec_driver_sql(
            _PG_MESSAGES,
            (
                first["workspace_id"],
                first["purpose"],
                first["template"],
                utcnow(),
                ids,
                [r["to_email"] for r in rows],
                [r["to_name"] for r in rows],
                [r["subject_type"] for r in rows],
                [r["subject_id"] for r in rows],
                [json.dumps(r["context"]) for r in rows],
                [r["dedupe_key"] for r in rows],
                [r["status"] for r in rows],
                [r["skip_reason"] for r in rows],
            ),
        )
    }
    return [i if i in inserted else None for i in ids]


def _enqueue_sends(session: Session, workspace_id: int, message_ids: Sequence[int]) -> None:
    """``outbox.enqueue`` of each message's send job, as multi-row inserts (one NOTIFY)."""
    if not message_ids:
        return
    spec = outbox.kinds().get(SEND_KIND)
    if spec is None:
        raise ValueError(f"unknown job kind {SEND_KIND!r}; load backend.jobs first")
    key = circuits.key_for(spec.provider, workspace_id) if spec.provider else None
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        connection = session.connection()
        for start in range(0, len(message_ids), _BULK_CHUNK * 5):
            chunk = list(message_ids[start : start + _BULK_CHUNK * 5])
            connection.exec_driver_sql(
                _PG_JOBS,
                (
                    SEND_KIND,
                    spec.provider,
                    key,
                    f"{SEND_KIND}:",
                    workspace_id,
                    JobStatus.PENDING.value,
                    spec.max_attempts,
                    now,
                    now,
                    chunk,
                    [turns.turn_for(session, key, now) for _ in chunk],
                ),
            )
        _notify(session, spec.provider is not None)
        return
    table = OutboxJob.__table__
    rows = [
        dict(
            kind=SEND_KIND,
            provider=spec.provider,
            circuit_key=key,
            fair_at=turns.turn_for(session, key, now),
            payload={"message_id": message_id},
            idempotency_key=send_key(message_id),
            workspace_id=workspace_id,
            status=JobStatus.PENDING,
            attempts=0,
            max_attempts=spec.max_attempts,
            run_after=now,
            created_at=now,
        )
        for message_id in message_ids
    ]
    for start in range(0, len(rows), _BULK_CHUNK):
        session.execute(
            conflict_insert(session, table).on_conflict_do_nothing(
                index_elements=["idempotency_key"]
            ),
            rows[start : start + _BULK_CHUNK],
        )


def _notify(session: Session, provider_job: bool) -> None:
    """As ``outbox.enqueue`` does, once for the lot: delivered at commit, wakes the workers."""
    payload = f", '{outbox.NOTIFY_PROVIDER_JOB}'" if provider_job else ""
    session.execute(text(f"NOTIFY {outbox.NOTIFY_CHANNEL}{payload}"))


def _ids_by_dedupe_key(session: Session, workspace_id: int, keys: Sequence[str]) -> dict[str, int]:
    if not keys:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter, not a bound parameter per key.
        found = session.connection().exec_driver_sql(
            "SELECT dedupe_key, id FROM email_messages "
            "WHERE workspace_id = %s AND dedupe_key = ANY(CAST(%b AS TEXT[]))",
            (workspace_id, list(keys)),
        )
        return {key: message_id for key, message_id in found}
    rows = session.execute(
        select(EmailMessage.dedupe_key, EmailMessage.id).where(
            EmailMessage.workspace_id == workspace_id, EmailMessage.dedupe_key.in_(list(keys))
        )
    )
    return {key: message_id for key, message_id in rows if key is not None}


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
