# Longer than 500 lines: every SendGrid event's effect in one place, the batch's prefetch and the
# one-by-one path sharing `_apply`, which must agree whichever path an event takes.
"""What SendGrid's events do to our messages, suppressions, leads and the engagement timeline.

SendGrid posts events in arrays, several times, out of order; the sidecar verifies and stores
each one in the inbox (backend/api/webhooks/sendgrid.py) and this module's handler applies it:

- once: ``email_events`` keeps (workspace, sg_event_id), inserted ignoring a conflict; an event
  already there changes nothing;
- to the message named by our custom arg ``hub_message_id`` (or, failing that, by SendGrid's
  X-Message-Id, the part of ``sg_message_id`` before its first dot), only within the event's
  workspace: an id of another workspace's message is ignored;
- moving the message's status forward only (``STATUS_RANK``), so the order events arrive in
  does not change where a message ends. Timestamps keep their first and last, counts add up.

Registered for every SendGrid event type in backend/email/jobs.py (``HANDLERS``).
Tested in tests/email/test_events.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, exists, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from backend.db import conflict_insert
from backend.email import purposes
from backend.email.sequences import stops
from backend.email.sequences.stops import stop_lead_enrolments
from backend.email.service import normalise, suppress
from backend.platform import inbox
from backend.platform.incidents import raise_incident
from models import (
    AlertPriority,
    EmailEvent,
    EmailMessage,
    EmailStatus,
    EmailSuppression,
    EngagementEvent,
    InboundEvent,
    Lead,
    utcnow,
)

SOURCE = "sendgrid"
CUSTOM_MESSAGE_ID = "hub_message_id"
CUSTOM_WORKSPACE_ID = "hub_workspace_id"

# How far along a message is. An event moves it only to a higher rank; a lower or equal one
# (a late "delivered" after "opened") changes only timestamps and counts. Before SendGrid
# (queued, unknown: the send's answer never came, sent) all rank 0/1, so a processed or
# delivered event settles an ``unknown`` message: SendGrid took it. Deferred is a delay on the
# way to delivery. The ends a person or the receiving server decides outrank engagement: an
# unsubscribe or spam report after a click is the newer news; a bounce or a drop means the
# mail never arrived, whatever "delivered" said (SendGrid sends bounce after delivered for an
# asynchronous bounce), so it outranks everything.
STATUS_RANK: dict[str, int] = {
    EmailStatus.QUEUED: 0,
    EmailStatus.UNKNOWN: 0,
    EmailStatus.FAILED: 0,
    EmailStatus.SKIPPED: 0,
    EmailStatus.SENT: 1,
    EmailStatus.PROCESSED: 2,
    EmailStatus.DEFERRED: 3,
    EmailStatus.DELIVERED: 4,
    EmailStatus.OPENED: 5,
    EmailStatus.CLICKED: 6,
    EmailStatus.UNSUBSCRIBED: 7,
    EmailStatus.SPAM_REPORT: 8,
    EmailStatus.DROPPED: 9,
    EmailStatus.BOUNCED: 9,
}

# SendGrid's event name -> the status it moves a message to (None: no status of its own).
EVENT_STATUS: dict[str, EmailStatus | None] = {
    "processed": EmailStatus.PROCESSED,
    "deferred": EmailStatus.DEFERRED,
    "delivered": EmailStatus.DELIVERED,
    "open": EmailStatus.OPENED,
    "click": EmailStatus.CLICKED,
    "bounce": EmailStatus.BOUNCED,
    "dropped": EmailStatus.DROPPED,
    "spamreport": EmailStatus.SPAM_REPORT,
    "unsubscribe": EmailStatus.UNSUBSCRIBED,
    "group_unsubscribe": EmailStatus.UNSUBSCRIBED,
    "group_resubscribe": None,
}

# The engagement timeline's name for each event about a person (processed and deferred are
# SendGrid's own business; a machine open is a mail provider's proxy, not a person).
ENGAGEMENT_NAME = {
    "delivered": "email.delivered",
    "open": "email.opened",
    "click": "email.clicked",
    "bounce": "email.bounced",
    "dropped": "email.dropped",
    "spamreport": "email.spam_reported",
    "unsubscribe": "email.unsubscribed",
    "group_unsubscribe": "email.group_unsubscribed",
    "group_resubscribe": "email.group_resubscribed",
}

# A lead's status, as far as e-mail moves it: forward only. Statuses this module does not set
# (a lead an operator moved on, "won", "lost"...) are left alone.
LEAD_RANK = {
    "new": 0,
    "contacted": 0,
    "proposal_viewed": 1,
    "engaged": 2,
    "email_invalid": 3,
    "unsubscribed": 4,
}


def _when(value: Any) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return utcnow()


def _x_message_id(sg_message_id: Any) -> str | None:
    if not isinstance(sg_message_id, str) or not sg_message_id:
        return None
    return sg_message_id.split(".", 1)[0] or None


def _message(session: Session, workspace_id: int, payload: dict[str, Any]) -> EmailMessage | None:
    """Our message the event is about, locked, in the event's workspace only."""
    claimed_ws = payload.get(CUSTOM_WORKSPACE_ID)
    if claimed_ws is not None and str(claimed_ws) != str(workspace_id):
        return None  # our custom args say another workspace: not this one's to touch
    stmt = select(EmailMessage).where(EmailMessage.workspace_id == workspace_id).with_for_update()
    raw_id = str(payload.get(CUSTOM_MESSAGE_ID) or "")
    if raw_id.isdigit():
        held = _held(session)
        if held is not None and int(raw_id) in held.messages:
            message = held.messages[int(raw_id)]
            return message if message is not None and message.workspace_id == workspace_id else None
        return session.scalars(stmt.where(EmailMessage.id == int(raw_id))).first()
    x_id = _x_message_id(payload.get("sg_message_id"))
    if x_id is None:
        return None
    if _held(session) is not None:
        session.flush()  # an earlier event of the batch may have set a message's X-Message-Id
    # One request's X-Message-Id is shared by its personalizations: only the address tells
    # them apart.
    email = normalise(str(payload.get("email") or ""))
    return session.scalars(
        stmt.where(EmailMessage.sendgrid_message_id == x_id, EmailMessage.to_email == email)
        .order_by(EmailMessage.id)
        .limit(1)
    ).first()


def _first_time(
    session: Session,
    workspace_id: int,
    sg_event_id: str,
    message_id: int | None,
    event: str,
    at: dt.datetime,
) -> bool:
    """Record the event; False when it was recorded before (a repeated delivery)."""
    held = _held(session)
    if held is not None and (workspace_id, sg_event_id) in held.known:
        # In a prefetched batch: the events recorded before it were loaded with it, and the
        # batch's own are remembered; the row is written with the batch's other changes (a
        # concurrent duplicate makes the batch fail and run again event by event, below).
        if held.known[(workspace_id, sg_event_id)]:
            return False
        held.known[(workspace_id, sg_event_id)] = True
        session.add(
            EmailEvent(
                workspace_id=workspace_id,
                sg_event_id=sg_event_id,
                message_id=message_id,
                event=event[:24],
                at=at,
            )
        )
        return True
    inserted = session.execute(
        conflict_insert(session, EmailEvent)
        .values(
            workspace_id=workspace_id,
            sg_event_id=sg_event_id,
            message_id=message_id,
            event=event[:24],
            at=at,
        )
        .on_conflict_do_nothing(index_elements=["workspace_id", "sg_event_id"])
        .returning(EmailEvent.id)
    ).scalar()
    return inserted is not None


def handle(session: Session, event: InboundEvent) -> None:
    """The inbox handler for every SendGrid event type."""
    payload = event.payload
    if event.workspace_id is None:
        return
    name = str(payload.get("event") or event.event_type)
    if name in COMMON or _held(session) is None:
        _handle(session, event, name)
        return
    # A suppression, a lead's status, an alert, a sequence stopped: applied as if alone (the
    # batch defers writes): what the events before it wrote is sent first, and its own queries
    # see its own writes.
    deferring = session.autoflush
    session.autoflush = True
    try:
        session.flush()
        _handle(session, event, name)
        session.flush()
    finally:
        session.autoflush = deferring


def _handle(session: Session, event: InboundEvent, name: str) -> None:
    payload = event.payload
    assert event.workspace_id is not None
    workspace_id = event.workspace_id
    sg_event_id = str(payload.get("sg_event_id") or event.external_id)
    message = _message(session, workspace_id, payload)
    at = _when(payload.get("timestamp"))
    if not _first_time(
        session, workspace_id, sg_event_id, message.id if message else None, name, at
    ):
        return
    if message is None:
        return  # not ours (sent from elsewhere on the account), or another workspace's
    machine_open = name == "open" and payload.get("sg_machine_open") is True
    _apply(message, name, payload, at, machine_open=machine_open)
    _suppressions(session, message, name, payload, at)
    if not machine_open:
        _engagement(session, message, name, sg_event_id, payload, at)
    if message.subject_type == "lead" and message.subject_id is not None:
        _lead(session, message, name, payload, at, machine_open=machine_open)


def _apply(
    message: EmailMessage | _State,
    name: str,
    payload: dict[str, Any],
    at: dt.datetime,
    *,
    machine_open: bool,
) -> None:
    target = EVENT_STATUS.get(name)
    if machine_open:
        # A mail provider fetched the images (Apple's privacy proxy): the message arrived, no
        # one is known to have read it.
        message.machine_open_count += 1
        target = EmailStatus.DELIVERED
    if target is not None and STATUS_RANK[target] > STATUS_RANK.get(message.status, 0):
        message.status = target.value
    # Any event means SendGrid has the message: an ``unknown`` send (its answer never came)
    # went out, and is settled by the rank above.
    if message.sent_at is None:
        message.sent_at = at
    if message.sendgrid_message_id is None:
        message.sendgrid_message_id = _x_message_id(payload.get("sg_message_id"))
    if name == "delivered" and (message.delivered_at is None or at < message.delivered_at):
        message.delivered_at = at
    if name == "open" and not machine_open:
        message.open_count += 1
        message.first_open_at = min(filter(None, [message.first_open_at, at]))
        message.last_open_at = max(filter(None, [message.last_open_at, at]))
    if name == "click":
        message.click_count += 1
        message.first_click_at = min(filter(None, [message.first_click_at, at]))
        message.last_click_at = max(filter(None, [message.last_click_at, at]))
    if name in ("bounce", "dropped"):
        kind = str(payload.get("type") or name)
        reason = str(payload.get("reason") or payload.get("status") or "")
        message.failure_reason = f"SendGrid {kind}: {reason}".strip().rstrip(":")[:2000]
    message.last_event_at = max(filter(None, [message.last_event_at, at]))


def _groups(message: EmailMessage, name: str) -> tuple[str, ...]:
    if name == "unsubscribe":
        return (purposes.MARKETING,)
    # group_unsubscribe / group_resubscribe: the send sets no asm_group_id (our groups are
    # ours, not SendGrid's), so the group is the message's purpose's.
    return purposes.unsubscribe_groups(message.purpose)


def _suppressions(
    session: Session, message: EmailMessage, name: str, payload: dict[str, Any], at: dt.datetime
) -> None:
    ws, email = message.workspace_id, message.to_email
    if (name == "bounce" and payload.get("type", "bounce") != "blocked") or name == "spamreport":
        reason = "bounce" if name == "bounce" else "spam_report"
        suppress(
            session,
            workspace_id=ws,
            email=email,
            groups=(purposes.ALL,),
            reason=reason,
            message_id=message.id,
        )
    elif name in ("unsubscribe", "group_unsubscribe"):
        # Out of order: a resubscribe SendGrid saw later wins over this unsubscribe.
        if not _later(session, message, ("group_resubscribe",), at):
            suppress(
                session,
                workspace_id=ws,
                email=email,
                groups=_groups(message, name),
                reason="unsubscribe",
                message_id=message.id,
            )
    elif name == "group_resubscribe" and not _later(
        session, message, ("unsubscribe", "group_unsubscribe"), at
    ):
        session.execute(
            delete(EmailSuppression).where(
                EmailSuppression.workspace_id == ws,
                EmailSuppression.email == email,
                EmailSuppression.purpose_group.in_(_groups(message, name)),
                # A bounce or a spam report is not lifted by a resubscribe.
                EmailSuppression.purpose_group != purposes.ALL,
            )
        )


def _later(
    session: Session, message: EmailMessage, names: tuple[str, ...], at: dt.datetime
) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    EmailEvent.workspace_id == message.workspace_id,
                    EmailEvent.message_id == message.id,
                    EmailEvent.event.in_(names),
                    EmailEvent.at > at,
                )
            )
        )
    )


def _engagement_values(
    message: EmailMessage | _State,
    name: str,
    sg_event_id: str,
    payload: dict[str, Any],
    at: dt.datetime,
) -> dict[str, Any] | None:
    """The event's engagement row, or None when it is about no person."""
    timeline_name = ENGAGEMENT_NAME.get(name)
    if timeline_name is None or message.subject_type not in ("lead", "client", "buyer"):
        return None
    if message.subject_id is None:
        return None
    properties: dict[str, Any] = {"purpose": message.purpose, "message_id": message.id}
    if name == "click" and isinstance(payload.get("url"), str):
        properties["url"] = payload["url"][:2000]
    if name == "bounce":
        properties["bounce_type"] = str(payload.get("type") or "bounce")
    return dict(
        workspace_id=message.workspace_id,
        source=SOURCE,
        source_event_id=sg_event_id[:128],
        subject_type=message.subject_type,
        subject_id=message.subject_id,
        name=timeline_name,
        occurred_at=at,
        properties=properties,
        created_at=utcnow(),
    )


def _engagement(
    session: Session,
    message: EmailMessage,
    name: str,
    sg_event_id: str,
    payload: dict[str, Any],
    at: dt.datetime,
) -> None:
    values = _engagement_values(message, name, sg_event_id, payload, at)
    if values is None:
        return
    if name in COMMON and _held(session) is not None:
        # Written with the batch (its email_events row said it is new; a concurrent duplicate
        # fails the batch, which runs again event by event).
        session.add(EngagementEvent(**values))
        return
    session.execute(
        conflict_insert(session, EngagementEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["workspace_id", "source", "source_event_id"])
    )


def _raise_lead(lead: Lead, status: str) -> bool:
    current = LEAD_RANK.get(lead.status)
    if current is None or LEAD_RANK[status] <= current:
        return False
    lead.status = status
    return True


def _lead(
    session: Session,
    message: EmailMessage,
    name: str,
    payload: dict[str, Any],
    at: dt.datetime,
    *,
    machine_open: bool,
) -> None:
    lead = session.scalars(
        select(Lead)
        .where(Lead.id == message.subject_id, Lead.workspace_id == message.workspace_id)
        .with_for_update()
    ).first()
    if lead is None:
        return
    if name == "open" and not machine_open and message.purpose == "proposal_sent":
        _raise_lead(lead, "proposal_viewed")
    elif name == "click":
        _raise_lead(lead, "engaged")
    elif name == "bounce" and payload.get("type", "bounce") != "blocked":
        _raise_lead(lead, "email_invalid")
        stop_lead_enrolments(
            session,
            workspace_id=lead.workspace_id,
            lead_id=lead.id,
            reason=stops.BOUNCED,
            at=at,
        )
        raise_incident(
            session,
            workspace_id=lead.workspace_id,
            rule="email.lead_bounced",
            entity_type="lead",
            entity_id=str(lead.id),
            message=f"Mail to lead {lead.name} bounced: the address is not valid. "
            "Correct it on the lead's page.",
            who="sendgrid",
        )
    elif name in ("unsubscribe", "group_unsubscribe"):
        # Whichever group they left, the follow-ups stop: they asked for less mail.
        stop_lead_enrolments(
            session,
            workspace_id=lead.workspace_id,
            lead_id=lead.id,
            reason=stops.UNSUBSCRIBED,
            at=at,
        )
    elif name == "spamreport":
        _raise_lead(lead, "unsubscribed")
        stopped = stop_lead_enrolments(
            session,
            workspace_id=lead.workspace_id,
            lead_id=lead.id,
            reason=stops.SPAM_REPORT,
            at=at,
        )
        raise_incident(
            session,
            workspace_id=lead.workspace_id,
            rule="email.lead_spam_report",
            entity_type="lead",
            entity_id=str(lead.id),
            priority=AlertPriority.HIGH,
            message=f"Lead {lead.name} reported our mail as spam: no more mail goes to them"
            f" and {stopped} sequence(s) stopped.",
            who="sendgrid",
        )


# The events most of a webhook's batch is made of, applied with the batch's writes deferred
# (``prefetch``): they change only their message, their own email_events row and the timeline.
# The others (bounces, drops, spam reports, unsubscribes) also touch suppressions, leads,
# alerts and sequences, and are applied between flushes, as if alone.
COMMON = frozenset({"processed", "deferred", "delivered", "open", "click"})
_HELD = "sendgrid_events_held"


@dataclass
class Held:
    """What ``prefetch`` loaded for a batch, in its session: the messages named by the events'
    custom args (locked, None when absent), and each (workspace, sg_event_id) of the batch with
    whether it is recorded (before the batch, or by an earlier event of it)."""

    messages: dict[int, EmailMessage | None] = field(default_factory=dict)
    known: dict[tuple[int, str], bool] = field(default_factory=dict)


def _held(session: Session) -> Held | None:
    held = session.info.get(_HELD)
    return held if isinstance(held, Held) else None


def prefetch(session: Session, events: Sequence[InboundEvent]) -> Held:
    """The inbox's prefetch: in two queries, the messages the batch's events name (locked in
    id order, so two workers lock the same messages in the same order) and the events of the
    batch already recorded. Kept on the session until it ends (a later chunk adds to it)."""
    held = _held(session)
    if held is None:
        held = session.info[_HELD] = Held()
    ids: set[int] = set()
    keys: dict[int, set[str]] = {}
    for event in events:
        if event.workspace_id is None:
            continue
        raw_id = str(event.payload.get(CUSTOM_MESSAGE_ID) or "")
        if raw_id.isdigit():
            ids.add(int(raw_id))
        sg_event_id = str(event.payload.get("sg_event_id") or event.external_id)
        if (event.workspace_id, sg_event_id) not in held.known:
            keys.setdefault(event.workspace_id, set()).add(sg_event_id)
    wanted = sorted(ids - held.messages.keys())
    if wanted:
        found = {
            m.id: m
            for m in session.scalars(
                select(EmailMessage)
                .where(EmailMessage.id.in_(wanted))
                .order_by(EmailMessage.id)
                .with_for_update()
            )
        }
        for message_id in wanted:
            held.messages[message_id] = found.get(message_id)
    for workspace_id, sg_ids in keys.items():
        recorded = set(
            session.scalars(
                select(EmailEvent.sg_event_id).where(
                    EmailEvent.workspace_id == workspace_id,
                    EmailEvent.sg_event_id.in_(sorted(sg_ids)),
                )
            )
        )
        for sg_event_id in sg_ids:
            held.known[(workspace_id, sg_event_id)] = sg_event_id in recorded
    return held


# What a batch of COMMON events reads of a message and may change (``apply_batch``).
_READ = (
    "id",
    "workspace_id",
    "purpose",
    "subject_type",
    "subject_id",
    "status",
    "sendgrid_message_id",
    "sent_at",
    "delivered_at",
    "first_open_at",
    "last_open_at",
    "open_count",
    "machine_open_count",
    "first_click_at",
    "last_click_at",
    "click_count",
    "last_event_at",
)
_WRITTEN = _READ[5:]


@dataclass(slots=True)
class _State:
    """A message's columns that ``_apply`` reads and sets, as a plain object (``apply_batch``
    builds no ORM object per message)."""

    id: int
    workspace_id: int
    purpose: str
    subject_type: str | None
    subject_id: int | None
    status: str
    sendgrid_message_id: str | None
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None
    first_open_at: dt.datetime | None
    last_open_at: dt.datetime | None
    open_count: int
    machine_open_count: int
    first_click_at: dt.datetime | None
    last_click_at: dt.datetime | None
    click_count: int
    last_event_at: dt.datetime | None
    failure_reason: str | None = None  # set only by bounces and drops, never COMMON events

    def written(self) -> tuple[Any, ...]:
        return tuple(getattr(self, column) for column in _WRITTEN)


@dataclass(slots=True)
class _New:
    """A COMMON event of a batch, about a message named by our custom arg."""

    sg_event_id: str
    name: str
    at: dt.datetime
    payload: dict[str, Any]


def apply_batch(session: Session, pending: Sequence[inbox.Pending]) -> set[int]:
    """The inbox's batch handler (``inbox.register``): the batch's COMMON events about a
    message our custom arg names, in its workspace, applied in a few statements whatever their
    number, exactly as ``handle`` would one by one; returns their inbound ids. Every other
    event (a bounce, a drop, a spam report, an (un)subscribe; an event without our custom
    args, or about no message of its workspace) is left to ``handle``.

    The messages are locked in id order; each event's ``email_events`` row is inserted
    ignoring a conflict, all in one statement, and only those it inserted (new: not recorded
    before, by this batch or by a concurrent worker, whose commit the insert waits for) change
    anything: each message is updated once with what its new events do (``_apply`` on its
    columns, in timestamp order), their engagement rows are inserted in one statement, and
    their leads move forward in one statement per status.
    """
    candidates: list[tuple[inbox.Pending, str, int]] = []
    for event in pending:
        payload = event.payload
        if event.workspace_id is None or not isinstance(payload, dict):
            continue
        name = str(payload.get("event") or event.event_type)
        raw_id = str(payload.get(CUSTOM_MESSAGE_ID) or "")
        claimed_ws = payload.get(CUSTOM_WORKSPACE_ID)
        if name not in COMMON or not raw_id.isdigit():
            continue
        if claimed_ws is not None and str(claimed_ws) != str(event.workspace_id):
            continue
        candidates.append((event, name, int(raw_id)))
    if not candidates:
        return set()
    # What the handler wrote earlier in this transaction is sent first: the queries below
    # must see it, and the ORM objects they update behind the session's back are expired.
    session.flush()
    table = cast(Table, EmailMessage.__table__)
    states = {
        row.id: _State(*row)
        for row in session.execute(
            select(*(table.c[column] for column in _READ))
            .where(table.c.id.in_(sorted({message_id for _, _, message_id in candidates})))
            .order_by(table.c.id)
            .with_for_update()
        )
    }
    applied: set[int] = set()
    first: dict[tuple[int, str], tuple[int, _New]] = {}  # the batch's first of each event
    for event, name, message_id in candidates:
        state = states.get(message_id)
        if state is None or state.workspace_id != event.workspace_id:
            continue  # not ours to touch: ``handle`` records it and does nothing else
        applied.add(event.id)
        sg_event_id = str(event.payload.get("sg_event_id") or event.external_id)
        key = (event.workspace_id, sg_event_id)
        if key not in first:
            at = _when(event.payload.get("timestamp"))
            first[key] = (message_id, _New(sg_event_id, name, at, event.payload))
    held = _held(session)
    if held is not None:
        for key in first:
            held.known[key] = True
    if not first:
        return applied
    # Core statements with lists of parameters: SQLAlchemy sends each as one multi-row
    # statement from a cached compilation (``insertmanyvalues``); a ``values([...])`` of rows
    # would be compiled anew every time, and the ORM's bulk path costs more again.
    events_table = cast(Table, EmailEvent.__table__)
    inserted = {
        (row[0], row[1])
        for row in session.execute(
            conflict_insert(session, events_table)
            .on_conflict_do_nothing(index_elements=["workspace_id", "sg_event_id"])
            .returning(events_table.c.workspace_id, events_table.c.sg_event_id),
            [
                dict(
                    workspace_id=workspace_id,
                    sg_event_id=new.sg_event_id,
                    message_id=message_id,
                    event=new.name[:24],
                    at=new.at,
                )
                for (workspace_id, _), (message_id, new) in first.items()
            ],
        )
    }
    by_message: dict[int, list[_New]] = {}
    for key, (message_id, new) in first.items():
        if key in inserted:
            by_message.setdefault(message_id, []).append(new)
    changes: list[dict[str, Any]] = []
    engagement: list[dict[str, Any]] = []
    leads: dict[int, tuple[int, str]] = {}  # lead id -> (workspace, the furthest status)
    for message_id, news in by_message.items():
        state = states[message_id]
        before = state.written()
        for new in sorted(news, key=lambda n: n.at):
            machine_open = new.name == "open" and new.payload.get("sg_machine_open") is True
            _apply(state, new.name, new.payload, new.at, machine_open=machine_open)
            if not machine_open:
                values = _engagement_values(state, new.name, new.sg_event_id, new.payload, new.at)
                if values is not None:
                    engagement.append(values)
            if state.subject_type == "lead" and state.subject_id is not None:
                target = _lead_target(state, new.name, machine_open=machine_open)
                if target is not None:
                    held_target = leads.get(state.subject_id)
                    if held_target is None or LEAD_RANK[target] > LEAD_RANK[held_target[1]]:
                        leads[state.subject_id] = (state.workspace_id, target)
        after = state.written()
        if after != before:
            changes.append(
                {"m_id": message_id, **{f"m_{c}": v for c, v in zip(_WRITTEN, after, strict=True)}}
            )
    if changes:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("m_id"))
            .values({column: bindparam(f"m_{column}") for column in _WRITTEN}),
            changes,
        )
        _expire(session, EmailMessage, [change["m_id"] for change in changes])
    if engagement:
        session.execute(
            conflict_insert(session, cast(Table, EngagementEvent.__table__)).on_conflict_do_nothing(
                index_elements=["workspace_id", "source", "source_event_id"]
            ),
            engagement,
        )
    if leads:
        _raise_leads(session, leads)
    return applied


def _lead_target(state: _State, name: str, *, machine_open: bool) -> str | None:
    """The status a COMMON event moves its lead to (``_lead``'s first two cases)."""
    if name == "open" and not machine_open and state.purpose == "proposal_sent":
        return "proposal_viewed"
    if name == "click":
        return "engaged"
    return None


def _raise_leads(session: Session, targets: dict[int, tuple[int, str]]) -> None:
    """Move leads forward only (``_raise_lead``): locked in id order, one UPDATE a status."""
    rows = session.execute(
        select(Lead.id, Lead.workspace_id, Lead.status)
        .where(Lead.id.in_(sorted(targets)))
        .order_by(Lead.id)
        .with_for_update()
    ).all()
    moves: dict[str, list[int]] = {}
    for lead_id, workspace_id, status in rows:
        want_ws, target = targets[lead_id]
        current = LEAD_RANK.get(status)
        if workspace_id != want_ws or current is None or LEAD_RANK[target] <= current:
            continue
        moves.setdefault(target, []).append(lead_id)
    for target, ids in moves.items():
        session.execute(
            update(Lead)
            .where(Lead.id.in_(ids))
            .values(status=target)
            .execution_options(synchronize_session=False)
        )
        _expire(session, Lead, ids)


def _expire(session: Session, model: type[EmailMessage] | type[Lead], ids: Sequence[int]) -> None:
    """Rows updated by a statement: their objects in the session, if any, are reloaded when
    next read (nothing of theirs is unsent: the session was flushed first)."""
    for row_id in ids:
        loaded = session.identity_map.get(identity_key(model, row_id))
        if loaded is not None:
            session.expire(loaded)


# Every SendGrid event type this module applies (registered in backend/email/jobs.py).
HANDLERS: dict[str, inbox.InboxHandler] = {event_type: handle for event_type in EVENT_STATUS}
