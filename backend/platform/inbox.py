"""The webhook inbox: verified provider events are stored with their processing job in one
transaction (``record``); the ``inbox.process`` job later applies each one through the handler
registered for its (provider, event type). On PostgreSQL, the events of a provider with a batch
handler (SendGrid's) that one statement stores for a workspace share one job (``_record_sql``).

Handlers are idempotent and order-independent: a provider sends the same event twice, out of
order, sometimes days late, and the final state must be the same as sending each once, in order.
"""

# Longer than 500 lines: storing (one hand-tuned PostgreSQL statement and the SQLite path) and
# applying (single, grouped and batch-applied events) share the handler registry and the job's
# payload shapes; split, each half would need the other's internals.

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import structlog
from sqlalchemy import Connection, Engine, Table, func, select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from backend.db import session_scope
from backend.platform import outbox
from models import InboundEvent, InboundStatus, JobStatus, utcnow
from models.base import UTCDateTime

InboxHandler = Callable[[Session, InboundEvent], None]
# Loads, for a batch of events about to be handled together, what their handler will read
# (see ``register``); returns it, to be held until the batch commits.
InboxPrefetch = Callable[[Session, Sequence[InboundEvent]], object]
PROCESS_KIND = "inbox.process"
log = structlog.get_logger("inbox")


class Pending(NamedTuple):
    """A pending event as a batch handler (``register``'s ``apply_batch``) sees it: the
    stored row's columns, without an ORM object."""

    id: int
    provider: str
    event_type: str
    external_id: str
    workspace_id: int | None
    payload: dict[str, Any]


# Applies, set-based, those of a batch's pending events it can, in the caller's transaction;
# returns their ids (the inbox marks them handled). The rest go through the handler.
InboxBatch = Callable[[Session, Sequence[Pending]], Collection[int]]
# Where ``load_events`` keeps, on the session, the ids of the events a batch handler applied:
# their jobs then find nothing left to do.
_APPLIED = "inbox_applied"


@dataclass(frozen=True, slots=True)
class _Registered:
    handler: InboxHandler
    defer_writes: bool
    prefetch: InboxPrefetch | None
    apply_batch: InboxBatch | None = None


_HANDLERS: dict[tuple[str, str], _Registered] = {}


def register(
    provider: str,
    handlers: Mapping[str, InboxHandler],
    *,
    defer_writes: bool = False,
    prefetch: InboxPrefetch | None = None,
    apply_batch: InboxBatch | None = None,
) -> None:
    """Register a provider's handlers, a table of event type -> handler that a domain keeps in
    its ``jobs.py`` (one table of every provider's events, where a reader sees what each does).

    ``defer_writes``: the handler's changes are sent to the database with the rest of its
    batch's, when the batch commits, rather than before its next query (SQLAlchemy's
    autoflush): a batch of events then costs a few multi-row statements, not several round
    trips per event. Only for a handler that never needs a query to see what it, or the
    handler of an earlier event in the same transaction, wrote: rows it loads come from the
    session where already loaded (with their unsent changes), but rows added and not yet sent
    are invisible to queries.

    ``prefetch``: called with the events of a batch this handler is about to handle, to load
    what it reads in one query rather than one per event. Only an optimization: the handler
    must work without it (an event also runs alone, after a failure in its batch).

    ``apply_batch``: called (before ``prefetch``) with the pending events of a batch of jobs
    about to run together, as plain rows; applies those it can in a few set-based statements
    and returns their ids, which the inbox marks handled in one statement, all in the batch's
    transaction (a failure rolls it all back, and each event then runs alone through its
    handler). The others go through the handler as usual. It must apply an event exactly as
    the handler would, and flush the session first if it reads rows the handler may have
    changed in the same transaction.
    """
    for event_type, handler in handlers.items():
        existing = _HANDLERS.get((provider, event_type))
        if existing is not None and existing.handler is not handler:
            raise ValueError(f"two handlers are registered for {provider} {event_type!r}")
        _HANDLERS[(provider, event_type)] = _Registered(
            handler, defer_writes, prefetch, apply_batch
        )


def handled() -> dict[tuple[str, str], InboxHandler]:
    """Every registered (provider, event type) and its handler."""
    return {key: registered.handler for key, registered in _HANDLERS.items()}


def handler_for(provider: str, event_type: str) -> InboxHandler | None:
    registered = _HANDLERS.get((provider, event_type))
    return registered.handler if registered else None


@dataclass(frozen=True, slots=True)
class Incoming:
    """A verified event to store. ``integration_id`` is the integration that received it
    (None only for the platform's own account): the same provider event id received by two
    integrations is two events. ``payload_json``, when given, is the exact JSON text
    ``payload`` was parsed from: PostgreSQL then stores it as received rather than a
    re-serialization (the same value, less work)."""

    provider: str
    external_id: str
    event_type: str
    workspace_id: int | None
    integration_id: int | None
    payload: dict[str, Any]
    payload_json: str | None = None
    received_at: dt.datetime | None = None

    @property
    def key(self) -> tuple[str, int | None, str]:
        """What makes two deliveries one event: see models/inbox.py."""
        return (self.provider, self.integration_id, self.external_id)


def record(
    session: Session,
    *,
    provider: str,
    external_id: str,
    event_type: str,
    workspace_id: int | None,
    integration_id: int | None,
    payload: dict[str, Any],
    received_at: dt.datetime | None = None,
    payload_json: str | None = None,
) -> bool:
    """Store a verified event and its processing job, in the caller's transaction.

    Returns False, changing nothing, when this event id is already stored for this receiving
    integration (for the platform's account: for this provider).
    """
    event = Incoming(
        provider,
        external_id,
        event_type,
        workspace_id,
        integration_id,
        payload,
        payload_json,
        received_at,
    )
    if session.get_bind().dialect.name == "postgresql":
        [stored] = record_many(session.connection(), [event])
        if stored:
            # Delivered at commit, like outbox.enqueue's.
            session.execute(text(f"NOTIFY {outbox.NOTIFY_CHANNEL}"))
        return stored
    inbound_id = session.execute(
        sqlite_insert(InboundEvent)
        .values(
            provider=provider,
            external_id=external_id,
            event_type=event_type,
            workspace_id=workspace_id,
            integration_id=integration_id,
            payload=payload,
            status=InboundStatus.PENDING,
            received_at=received_at or utcnow(),
            attempts=0,
        )
        # No conflict target: the key is UNIQUE(integration_id, external_id), or the partial
        # index of the platform's events, whichever applies; nothing else on the table is
        # unique but the id.
        .on_conflict_do_nothing()
        .returning(InboundEvent.id)
    ).scalar()
    if inbound_id is None:
        return False
    outbox.enqueue(
        session,
        kind=PROCESS_KIND,
        payload={"inbound_id": inbound_id},
        idempotency_key=_job_key(provider, integration_id, external_id),
        workspace_id=workspace_id,
    )
    return True


def record_committed(engine: Engine, event: Incoming) -> bool:
    """``record`` in a transaction of its own, committed before this returns."""
    with session_scope(engine) as session:
        return record(
            session,
            provider=event.provider,
            external_id=event.external_id,
            event_type=event.event_type,
            workspace_id=event.workspace_id,
            integration_id=event.integration_id,
            payload=event.payload,
            received_at=event.received_at,
            payload_json=event.payload_json,
        )


def record_all_committed(engine: Engine, events: Iterable[Incoming]) -> list[bool]:
    """``record`` for each event, all in one transaction of their own (a batch the sender
    signed as one is stored whole or not at all), committed before this returns; for each
    event, False for a duplicate (of a stored event or of one earlier in ``events``)."""
    with session_scope(engine) as session:
        if session.get_bind().dialect.name == "postgresql":
            # A few statements for the batch (a SendGrid post holds up to thousands of
            # events), not one round trip and one NOTIFY an event; one NOTIFY for the lot.
            outcomes = record_many(session.connection(), list(events))
            if any(outcomes):
                session.execute(text(f"NOTIFY {outbox.NOTIFY_CHANNEL}"))
            return outcomes
        return [
            record(
                session,
                provider=event.provider,
                external_id=event.external_id,
                event_type=event.event_type,
                workspace_id=event.workspace_id,
                integration_id=event.integration_id,
                payload=event.payload,
                received_at=event.received_at,
                payload_json=event.payload_json,
            )
            for event in events
        ]


@dataclass(frozen=True)
class RecordStatement:
    """One statement storing a batch of events and their jobs (PostgreSQL; ``%s``
    placeholders, as psycopg and SQLAlchemy's ``exec_driver_sql`` take them), and how to read
    its result rows: see ``record_many``."""

    sql: str
    params: tuple[Any, ...]
    events: Sequence[Incoming]
    first: dict[tuple[str, int | None, str], int]

    def outcomes(self, rows: Iterable[Sequence[Any]]) -> list[bool]:
        """For each event, True if this statement stored it."""
        stored = {(row[0], row[1], row[2]) for row in rows}
        return [
            self.first[event.key] == index and event.key in stored
            for index, event in enumerate(self.events)
        ]


# The most events one statement stores (``record_many`` splits longer lists).
MAX_RECORD_BATCH = 128
_ROW_PARAMS = 7  # the parameters of one row of _record_sql


def record_statement(events: Sequence[Incoming]) -> RecordStatement:
    """The statement that stores ``events`` (1 to MAX_RECORD_BATCH of them): see
    ``record_many``."""
    first: dict[tuple[str, int | None, str], int] = {}
    for index, event in enumerate(events):
        first.setdefault(event.key, index)
    unique = [events[index] for index in first.values()]
    if not 0 < len(unique) <= MAX_RECORD_BATCH:
        raise ValueError(f"a statement stores 1 to {MAX_RECORD_BATCH} events, not {len(unique)}")
    now = utcnow()
    params: list[Any] = []
    for event in unique:
        received = event.received_at or now
        if received.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC datetime is required")
        params += [
            event.provider,
            event.external_id,
            event.event_type,
            event.workspace_id,
            event.integration_id,
            event.payload_json if event.payload_json is not None else json.dumps(event.payload),
            received,
        ]
    # Rows padded with NULLs to a power of two: a handful of statement texts, each parsed and
    # prepared once per connection, rather than one per batch size (parsing one of ~100 rows
    # costs milliseconds, and the driver keeps only so many prepared).
    rows = 1 << (len(unique) - 1).bit_length()
    params += [None] * (_ROW_PARAMS * (rows - len(unique)))
    grouped = tuple(sorted(_batch_providers()))
    params += [outbox.kinds()[PROCESS_KIND].max_attempts] * (2 if grouped else 1)
    return RecordStatement(_record_sql(rows, grouped), tuple(params), events, first)


def record_many(connection: Connection, events: Sequence[Incoming]) -> list[bool]:
    """Store events and their processing jobs with one statement, in the connection's
    transaction (PostgreSQL only); for each event, False if it was already stored (or repeats
    one earlier in ``events``).

    The sidecar's hot path (through backend/api/intake.py, which runs ``record_statement`` on
    its own connections): a batch costs one round trip and, once committed, one WAL flush,
    whatever its size. It sends no NOTIFY: a NOTIFY holds PostgreSQL's global notify lock from
    the commit until the WAL is flushed, so transactions that notify commit one at a time
    (measured here: ~1,600 commits/s at most, against ~12,000 without); the intake notifies
    from a connection of its own after committing, at most once per 25 ms a process.
    """
    outcomes: list[bool] = []
    for start in range(0, len(events), MAX_RECORD_BATCH):
        statement = record_statement(events[start : start + MAX_RECORD_BATCH])
        rows = connection.exec_driver_sql(statement.sql, statement.params).all()
        outcomes += statement.outcomes(rows)
    return outcomes


def _job_key(provider: str, integration_id: int | None, external_id: str) -> str:
    # _record_sql spells the same key in SQL. The platform's events keep the key they had
    # before events were scoped by integration.
    if integration_id is None:
        return f"inbox:{provider}:{external_id}"
    return f"inbox:{provider}:{integration_id}:{external_id}"


@functools.lru_cache(maxsize=32)
def _record_sql(rows: int, grouped: tuple[str, ...] = ()) -> str:
    """Both rows of up to ``rows`` events in one statement (rows of NULLs are padding): a job
    is inserted for each event that was (a duplicate inserts nothing), its payload pointing at
    the event's new id. Rows are spelled out rather than passed as arrays to unnest: the
    driver's encoding of arrays of 4 KB JSON texts cost more than the insert itself.

    Events of the ``grouped`` providers (those with a batch handler, ``register``) get one job
    for all of a workspace's events in the statement, ``{"inbound_ids": [...]}`` keyed
    ``inbox:<provider>:batch:<first id>``: a SendGrid post of hundreds of events is claimed,
    run and completed as a few jobs, not one per event (``process`` says how a failing event
    is taken out of its group)."""
    row = (
        "(%s, %s, %s, CAST(%s AS INTEGER), CAST(%s AS INTEGER), CAST(%s AS JSONB),"
        " CAST(%s AS TIMESTAMPTZ))"
    )
    # Provider names are the registry's constants (``register``), never a request's value.
    names = ", ".join("'" + name.replace("'", "''") + "'" for name in grouped)
    alone = f"WHERE provider NOT IN ({names})" if grouped else ""
    group_job = (
        f"""
    ), group_job AS (
        INSERT INTO outbox_jobs
            (kind, provider, payload, idempotency_key, workspace_id, status, attempts,
             max_attempts, run_after, fair_at, created_at)
        SELECT '{PROCESS_KIND}', NULL,
               jsonb_build_object('inbound_ids', jsonb_agg(id ORDER BY id)),
               'inbox:' || provider || ':batch:' || min(id),
               workspace_id, '{JobStatus.PENDING.value}', 0, CAST(%s AS INTEGER),
               min(received_at), min(received_at), min(received_at)
        FROM event
        WHERE provider IN ({names})
        GROUP BY provider, workspace_id
        ON CONFLICT (idempotency_key) DO NOTHING"""  # noqa: S608 (constants only, as below)
        if grouped
        else ""
    )
    # Only constants are formatted in; every value is a parameter. ON CONFLICT has no target:
    # an event is a duplicate under UNIQUE(integration_id, external_id) or, for the
    # platform's events (no integration), under the partial index on (provider, external_id).
    return f"""
    WITH incoming (provider, external_id, event_type, workspace_id, integration_id, payload,
                   received_at) AS (
        VALUES {", ".join([row] * rows)}
    ), event AS (
        INSERT INTO inbound_events
            (provider, external_id, event_type, workspace_id, integration_id, payload, status,
             received_at, attempts)
        SELECT provider, external_id, event_type, workspace_id, integration_id, payload,
               '{InboundStatus.PENDING.value}', received_at, 0
        FROM incoming
        WHERE provider IS NOT NULL
        ON CONFLICT DO NOTHING
        RETURNING id, provider, integration_id, external_id, workspace_id, received_at
    ), job AS (
        INSERT INTO outbox_jobs
            (kind, provider, payload, idempotency_key, workspace_id, status, attempts,
             max_attempts, run_after, fair_at, created_at)
        SELECT '{PROCESS_KIND}', NULL, jsonb_build_object('inbound_id', id),
               'inbox:' || provider || ':' || COALESCE(integration_id || ':', '')
               || external_id,
               workspace_id, '{JobStatus.PENDING.value}', 0, CAST(%s AS INTEGER), received_at,
               received_at,
               received_at
        FROM event
        {alone}
        ON CONFLICT (idempotency_key) DO NOTHING{group_job}
    )
    SELECT provider, integration_id, external_id FROM event
    """  # noqa: S608


def load_events(session: Session, jobs: Sequence[outbox.JobContext]) -> list[object]:
    """``process``'s prepare hook (both declared in platform/jobs.py): the batch's events in one
    query, so that each job's ``session.get`` finds its event already loaded, then what their
    handlers prefetch."""
    ids = [inbound_id for job in jobs for inbound_id in _inbound_ids(job.payload)]
    batched = _batch_providers()
    if batched:
        # The job's key names the event's provider (``_job_key``): only events of a provider
        # with a batch handler are read for it, the rest cost no query more than before.
        mine = [
            inbound_id
            for job in jobs
            if _key_provider(job.idempotency_key) in batched
            for inbound_id in _inbound_ids(job.payload)
        ]
        if mine:
            applied = _apply_batches(session, mine, batched)
            ids = [inbound_id for inbound_id in ids if inbound_id not in applied]
            if not ids:
                return []
    events = list(session.scalars(select(InboundEvent).where(InboundEvent.id.in_(ids))))
    by_prefetch: dict[InboxPrefetch, list[InboundEvent]] = {}
    for event in events:
        registered = _HANDLERS.get((event.provider, event.event_type))
        if event.status is InboundStatus.PENDING and registered and registered.prefetch:
            by_prefetch.setdefault(registered.prefetch, []).append(event)
    return [events, *(prefetch(session, batch) for prefetch, batch in by_prefetch.items())]


def _inbound_ids(payload: Mapping[str, Any]) -> list[int]:
    """The events an ``inbox.process`` job applies: one (``inbound_id``) or a group
    (``inbound_ids``, see ``_record_sql``)."""
    if "inbound_ids" in payload:
        return [int(inbound_id) for inbound_id in payload["inbound_ids"]]
    return [int(payload["inbound_id"])]


def _key_provider(key: str) -> str:
    """The provider a key of ``_job_key`` names ("" for another key)."""
    parts = key.split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] == "inbox" else ""


def _batch_providers() -> frozenset[str]:
    return frozenset(
        provider for (provider, _), registered in _HANDLERS.items() if registered.apply_batch
    )


def _apply_batches(session: Session, ids: list[int], providers: frozenset[str]) -> set[int]:
    """Let batch handlers apply what they can of these events (``register``); returns the ids
    they applied, which are marked handled in one statement and remembered on the session,
    for ``process`` to skip."""
    rows = session.execute(
        select(
            InboundEvent.id,
            InboundEvent.provider,
            InboundEvent.event_type,
            InboundEvent.external_id,
            InboundEvent.workspace_id,
            InboundEvent.payload,
        ).where(
            InboundEvent.id.in_(ids),
            InboundEvent.status == InboundStatus.PENDING,
            InboundEvent.provider.in_(sorted(providers)),
        )
    ).all()
    by_batch: dict[InboxBatch, list[Pending]] = {}
    for row in rows:
        registered = _HANDLERS.get((row.provider, row.event_type))
        if registered is not None and registered.apply_batch is not None:
            by_batch.setdefault(registered.apply_batch, []).append(Pending(*row))
    applied: set[int] = set()
    for apply_batch, pending in by_batch.items():
        applied.update(apply_batch(session, pending))
    if not applied:
        return applied
    events = cast(Table, InboundEvent.__table__)  # a Core statement: no ORM bookkeeping
    session.execute(
        update(events)
        .where(events.c.id.in_(sorted(applied)), events.c.status == InboundStatus.PENDING)
        .values(
            status=InboundStatus.HANDLED,
            handled_at=utcnow(),
            attempts=events.c.attempts + 1,
            last_error=None,
        )
    )
    session.info.setdefault(_APPLIED, set()).update(applied)
    return applied


def process(session: Session, job: outbox.JobContext) -> None:
    """Apply the job's stored event, or its group of events. Runs in the job's transaction:
    the effect and the 'handled' mark commit together, so a crash between them cannot apply an
    event twice.

    A group's events not applied by their batch handler each run in a savepoint: one that
    fails is rolled back alone and handed to a job of its own (keyed as a lone event's job
    would be), which retries it, fails it and shows its error like any event's, while the
    rest of the group is done."""
    if "inbound_ids" not in job.payload:
        _process_one(session, int(job.payload["inbound_id"]))
        return
    applied = session.info.get(_APPLIED) or set()
    for inbound_id in _inbound_ids(job.payload):
        if inbound_id in applied:
            continue
        savepoint = session.begin_nested()
        try:
            _process_one(session, inbound_id)
            savepoint.commit()
        except Exception as exc:
            savepoint.rollback()
            _hand_off(session, inbound_id, exc)


def _hand_off(session: Session, inbound_id: int, error: Exception) -> None:
    """A group's failing event, given a job of its own."""
    event = session.get(InboundEvent, inbound_id)
    if event is None:
        return
    log.warning(
        "inbox.event_handed_off",
        provider=event.provider,
        event_type=event.event_type,
        inbound_id=inbound_id,
        error=type(error).__name__,
    )
    outbox.enqueue(
        session,
        kind=PROCESS_KIND,
        payload={"inbound_id": inbound_id},
        idempotency_key=_job_key(event.provider, event.integration_id, event.external_id),
        workspace_id=event.workspace_id,
    )


def _process_one(session: Session, inbound_id: int) -> None:
    applied = session.info.get(_APPLIED)
    if applied and inbound_id in applied:
        return  # applied with its batch (``load_events``), in this transaction
    event = session.get(InboundEvent, inbound_id)
    if event is None or event.status in (InboundStatus.HANDLED, InboundStatus.IGNORED):
        return
    event.attempts += 1
    registered = _HANDLERS.get((event.provider, event.event_type))
    if registered is None:
        event.status = InboundStatus.IGNORED
        event.handled_at = utcnow()
        return
    try:
        if registered.defer_writes:
            with session.no_autoflush:
                registered.handler(session, event)
        else:
            registered.handler(session, event)
    except Exception as exc:
        # The job's transaction rolls back; the runner records the error on the job.
        raise RuntimeError(f"{event.provider} {event.event_type} handler failed: {exc}") from exc
    event.status = InboundStatus.HANDLED
    event.handled_at = utcnow()
    event.last_error = None


def lag_seconds(session: Session, *, now: dt.datetime | None = None) -> float:
    """Age of the oldest event not yet handled: how far processing is behind intake."""
    oldest = session.scalar(
        select(func.min(InboundEvent.received_at, type_=UTCDateTime())).where(
            InboundEvent.status == InboundStatus.PENDING
        )
    )
    if oldest is None:
        return 0.0
    return max(0.0, ((now or utcnow()) - oldest).total_seconds())


def recent(
    session: Session, *, workspace_id: int, limit: int = 50, offset: int = 0
) -> list[InboundEvent]:
    """The workspace's latest webhooks, newest first, ``limit`` of them after ``offset``."""
    return list(
        session.scalars(
            select(InboundEvent)
            .where(InboundEvent.workspace_id == workspace_id)
            .order_by(InboundEvent.received_at.desc(), InboundEvent.id.desc())
            .limit(limit)
            .offset(max(offset, 0))
        )
    )
