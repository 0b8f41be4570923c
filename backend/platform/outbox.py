# Longer than 500 lines: enqueue, claim, complete and fail are one state machine over one
# table, whose statements are built once and share its turn and lease rules.
"""The transactional outbox: every side effect on a provider is a job written in the same
transaction as the change that asks for it, then run by workers.

- ``enqueue`` inside the caller's transaction; a repeated idempotency key adds nothing.
- Workers ``claim`` batches (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's single writer
  makes the claiming UPDATE atomic there), holding a lease they can extend.
- Failures back off exponentially with jitter; a provider's 4xx that cannot succeed fails at
  once; a 429 waits for its Retry-After without using an attempt; after ``max_attempts`` the job
  is dead and an alert is raised. Jobs of an account whose circuit is open wait, unclaimed
  (each workspace's account at a provider has its own circuit: ``circuits.key_for``).
- Claims are fair across workspaces: by each job's turn (``fair_at``, ``turns``), not by when
  it was queued: one workspace's thousand invoices do not hold another's one back. A live
  show's invoice jobs take turns ahead of all other work (``enqueue(ahead=True)``).
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import structlog
from sqlalchemy import ColumnElement, and_, bindparam, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from backend.integrations.errors import ProviderRateLimited, ProviderRejected, ProviderUnavailable
from backend.platform import circuits, outbox_pauses, turns
from backend.platform.provider_failures import describe
from models import JobStatus, OutboxJob, utcnow

log = structlog.get_logger("outbox")

# 5, 10, 20, 40, 80 minutes: the retry schedule a provider outage of an evening survives.
DEFAULT_BACKOFF = (300.0, 600.0, 1200.0, 2400.0, 4800.0)
DEFAULT_MAX_ATTEMPTS = len(DEFAULT_BACKOFF) + 1
# A job that failed at least once: it used an attempt, or probed a provider still down (which
# uses none: see ``fail``). Pending, it waits out a backoff: what an outage holds back.
FAILED_BEFORE = or_(OutboxJob.attempts > 0, OutboxJob.last_error.is_not(None))
NOTIFY_CHANNEL = "outbox"
# The payload of the NOTIFY for a job that calls a provider: it wakes the workers that run
# those (see backend/jobs/drainer.py); any other NOTIFY on the channel is for local jobs.
NOTIFY_PROVIDER_JOB = "provider"


class RetryLater(Exception):
    """A temporary failure. ``retry_after`` (seconds) comes from the provider (429) if given."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, rate_limited: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class PermanentFailure(Exception):
    """The provider refused in a way no retry can fix (a 4xx such as a bad parameter)."""


def _no_release() -> None:
    raise RuntimeError("this job kind declares no provider: it may not call one")


@dataclass(frozen=True)
class JobContext:
    id: int
    kind: str
    payload: dict[str, Any]
    idempotency_key: str
    attempt: int
    workspace_id: int | None
    worker: str
    # Ends the job's current transaction (set by the runner for provider jobs).
    release: Callable[[], None] = field(default=_no_release, compare=False, repr=False)

    def call_provider(self, call: Callable[[], T]) -> T:
        """Run a provider call outside any database transaction.

        A transaction held across a network call would hold row locks (and, on SQLite, the
        whole database's write lock) for as long as the provider takes. So the job's reads so
        far are ended first; its writes come after, in a new transaction that commits with the
        job's completion. Write nothing before calling: it would commit early.
        """
        self.release()
        return call()

    def provider_key(self, *parts: object) -> str:
        """A deterministic idempotency key for one provider call of this job: a retry, or
        another worker after a crash, sends the same key, so the provider applies it once."""
        suffix = ":".join(str(p) for p in parts)
        return f"{self.idempotency_key}:{suffix}" if suffix else self.idempotency_key


Handler = Callable[[Session, JobContext], None]
# Called in the transaction that marks a job dead: (session, payload, error message). Lets the
# domain row the job worked for show the failure (an invoice turns Error), atomically.
DeadHook = Callable[[Session, dict[str, Any], str], None]
# Called before a run of local jobs of one kind that share a transaction, with those jobs: loads
# what their handlers will read in a few queries instead of a few per job, and returns it (the
# runner holds it until the transaction ends: a session keeps only weak references to rows
# nothing has changed). Only an optimization: each handler must work without it (a job also
# runs alone, after a failure).
PrepareHook = Callable[[Session, Sequence[JobContext]], object]
T = TypeVar("T")


@dataclass(frozen=True)
class JobKind:
    kind: str
    handler: Handler
    provider: str | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff: tuple[float, ...] = DEFAULT_BACKOFF
    # None: the runner's lease (settings.outbox_lease_seconds).
    lease_seconds: int | None = None
    on_dead: DeadHook | None = None
    prepare: PrepareHook | None = None


_KINDS: dict[str, JobKind] = {}


def declare(
    kind: str,
    handler: Handler,
    *,
    provider: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff: Sequence[float] = DEFAULT_BACKOFF,
    lease_seconds: int | None = None,
    on_dead: DeadHook | None = None,
    prepare: PrepareHook | None = None,
) -> None:
    """Declare what runs a kind of job. Domains do it in their ``jobs.py`` (found by
    ``backend.jobs``), so that the scheduler, the sidecar and the console all know every kind."""
    existing = _KINDS.get(kind)
    if existing is not None and existing.handler is not handler:
        raise ValueError(f"job kind {kind!r} is declared twice")
    _KINDS[kind] = JobKind(
        kind, handler, provider, max_attempts, tuple(backoff), lease_seconds, on_dead, prepare
    )


def job_kind(
    kind: str,
    *,
    provider: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff: Sequence[float] = DEFAULT_BACKOFF,
    lease_seconds: int | None = None,
    on_dead: DeadHook | None = None,
    prepare: PrepareHook | None = None,
) -> Callable[[Handler], Handler]:
    """``declare`` as a decorator: for kinds of tests and benchmarks, which no scheduler runs.
    (A kind of the product is declared in its domain's ``jobs.py``; tests/jobs/test_discovery.py
    fails on one declared anywhere else.)"""

    def register(handler: Handler) -> Handler:
        declare(
            kind,
            handler,
            provider=provider,
            max_attempts=max_attempts,
            backoff=backoff,
            lease_seconds=lease_seconds,
            on_dead=on_dead,
            prepare=prepare,
        )
        return handler

    return register


def kinds() -> dict[str, JobKind]:
    return dict(_KINDS)


def configure_kind(kind: str, **changes: Any) -> None:
    """Per-deployment (or per-test) tuning of a kind's retries: backoff, max_attempts, lease."""
    current = _KINDS[kind]
    _KINDS[kind] = JobKind(**{**current.__dict__, **changes})


# -- writing jobs ---------------------------------------------------------------------------


def enqueue(
    session: Session,
    *,
    kind: str,
    payload: dict[str, Any],
    idempotency_key: str,
    workspace_id: int | None = None,
    run_after: dt.datetime | None = None,
    max_attempts: int | None = None,
    ahead: bool = False,
) -> int | None:
    """Add a job in the caller's transaction. Returns its id, or None when a job with this
    idempotency key already exists (nothing is added). ``ahead``: claimed before all other
    work (a live show's invoices; ``turns.AHEAD``)."""
    spec = _KINDS.get(kind)
    if spec is None:
        raise ValueError(
            f"unknown job kind {kind!r}; declare it in its domain's jobs.py (outbox.declare)"
        )
    now = utcnow()
    key = circuits.key_for(spec.provider, workspace_id) if spec.provider else None
    fair_at = turns.turn_for(session, key, now, ahead=ahead)
    # The statement is built once a process and run on the session's connection (Core): on a
    # hot path (a lead form's submission) building it anew cost more CPU than running it. What
    # the session holds unwritten is written first, as its own execute would have.
    if session.autoflush:
        session.flush()
    connection = session.connection()
    job_id = connection.execute(
        _insert_job(connection.dialect.name),
        {
            "v_kind": kind,
            "v_provider": spec.provider,
            "v_circuit_key": key,
            "v_fair_at": fair_at,
            "v_payload": payload,
            "v_idempotency_key": idempotency_key,
            "v_workspace_id": workspace_id,
            "v_status": JobStatus.PENDING,
            "v_attempts": 0,
            "v_max_attempts": max_attempts or spec.max_attempts,
            "v_run_after": run_after or now,
            "v_created_at": now,
        },
    ).scalar()
    if job_id is None and key:
        turns.forget(session, key, ahead=ahead)  # the turn was not taken
    if job_id is not None and connection.dialect.name == "postgresql":
        # Delivered at commit; wakes idle workers at once instead of at their next poll.
        connection.execute(_NOTIFY_PROVIDER if spec.provider else _NOTIFY_LOCAL)
    return job_id


_JOB_COLUMNS = (
    "kind",
    "provider",
    "circuit_key",
    "fair_at",
    "payload",
    "idempotency_key",
    "workspace_id",
    "status",
    "attempts",
    "max_attempts",
    "run_after",
    "created_at",
)
_NOTIFY_PROVIDER = text(f"NOTIFY {NOTIFY_CHANNEL}, '{NOTIFY_PROVIDER_JOB}'")
_NOTIFY_LOCAL = text(f"NOTIFY {NOTIFY_CHANNEL}")


@functools.cache
def _insert_job(dialect: str) -> Any:
    """``enqueue``'s insert for a dialect: a repeated idempotency key adds nothing."""
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    columns = OutboxJob.__table__.c
    return (
        insert_for(OutboxJob)
        .values({name: bindparam(f"v_{name}", type_=columns[name].type) for name in _JOB_COLUMNS})
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(OutboxJob.id)
    )


# -- claiming and leases --------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int
    max_attempts: int
    workspace_id: int | None
    provider: str | None
    circuit_key: str | None
    probe: bool = False  # sent as its account's half-open breaker's probe (``claim``)


def claim(
    session: Session,
    *,
    worker: str,
    limit: int = 100,
    lease_seconds: int = 60,
    now: dt.datetime | None = None,
    provider_jobs: bool | None = None,
) -> list[Claimed]:
    """Take up to ``limit`` due jobs for ``worker``, in their turns (``fair_at``: fair across
    workspaces, see the module's docstring). Commit soon after: the claim is the lease.

    ``provider_jobs``: None takes any job; False only jobs that call no provider; True only
    jobs that do."""
    now = now or utcnow()
    paused = outbox_pauses.held()
    # Circuits gate provider jobs only: a claim of local jobs needs no look at them.
    gate = (
        circuits.Gate([], [])
        if provider_jobs is False
        else circuits.claim_gate(session, now=now, probe=True)
    )
    due = (
        select(OutboxJob.id)
        .where(
            OutboxJob.status == JobStatus.PENDING,
            OutboxJob.run_after <= now,
            ~paused,
        )
        .order_by(OutboxJob.fair_at, OutboxJob.id)
        .limit(limit)
    )
    if provider_jobs is not None:
        due = due.where(
            OutboxJob.provider.is_not(None) if provider_jobs else OutboxJob.provider.is_(None)
        )
    if gate.blocked:
        # Only the accounts whose breaker is open: every other workspace's jobs at the same
        # provider go on.
        due = due.where(
            or_(OutboxJob.circuit_key.is_(None), OutboxJob.circuit_key.not_in(gate.blocked))
        )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claimed = _take(session, due, worker, lease_seconds, now)
    for key in gate.probes:
        # A half-open circuit lets exactly one job through to test the provider: a due one, or
        # one waiting out its backoff after failing (in an outage, all of them); the one due
        # soonest, so that a job the provider always fails on cannot keep the breaker open.
        probe = (
            select(OutboxJob.id)
            .where(
                OutboxJob.status == JobStatus.PENDING,
                or_(OutboxJob.run_after <= now, FAILED_BEFORE),
                OutboxJob.circuit_key == key,
                ~paused,
            )
            .order_by(OutboxJob.run_after, OutboxJob.fair_at, OutboxJob.id)
            .limit(1)
        )
        if session.get_bind().dialect.name == "postgresql":
            probe = probe.with_for_update(skip_locked=True)
        probed = _take(session, probe, worker, lease_seconds, now)
        claimed += [replace(job, probe=True) for job in probed]
    return claimed


def _take(
    session: Session, ids: Any, worker: str, lease_seconds: int, now: dt.datetime
) -> list[Claimed]:
    target: ColumnElement[bool]
    if session.get_bind().dialect.name == "postgresql":
        # Materialized once: PostgreSQL may otherwise re-run an IN (... LIMIT n SKIP LOCKED)
        # subquery per row and take more than n jobs.
        chosen = ids.cte("claimable").prefix_with("MATERIALIZED")
        # Only the chosen ids: they are pending, and locked by this statement (FOR UPDATE
        # SKIP LOCKED re-checks a row's status when it locks it). A status condition here
        # too let PostgreSQL plan the update as a scan of every pending job, comparing each
        # with every chosen id (at 2,800 pending, 540,000 comparisons and 350 ms a claim)
        # whenever its statistics thought the queue empty.
        target = OutboxJob.id.in_(select(chosen.c.id))
    else:
        target = and_(
            OutboxJob.id.in_(ids.scalar_subquery()), OutboxJob.status == JobStatus.PENDING
        )
    stmt = (
        update(OutboxJob)
        .where(target)
        .values(
            status=JobStatus.RUNNING,
            lease_owner=worker,
            lease_until=now + dt.timedelta(seconds=lease_seconds),
            attempts=OutboxJob.attempts + 1,
        )
        .returning(
            OutboxJob.id,
            OutboxJob.kind,
            OutboxJob.payload,
            OutboxJob.idempotency_key,
            OutboxJob.attempts,
            OutboxJob.max_attempts,
            OutboxJob.workspace_id,
            OutboxJob.provider,
            OutboxJob.circuit_key,
            OutboxJob.fair_at,
        )
        .execution_options(synchronize_session=False)
    )
    # In their turns (the claim's order: RETURNING follows however the rows were found).
    rows = sorted(session.execute(stmt).all(), key=lambda row: (row.fair_at, row.id))
    return [Claimed(*row[:-1]) for row in rows]


def extend_lease(
    session: Session, *, job_id: int, worker: str, seconds: int, now: dt.datetime | None = None
) -> bool:
    """Keep a long job's lease; False if the lease was lost (another worker may have it)."""
    now = now or utcnow()
    result = session.execute(
        update(OutboxJob)
        .where(
            OutboxJob.id == job_id,
            OutboxJob.lease_owner == worker,
            OutboxJob.status == JobStatus.RUNNING,
        )
        .values(lease_until=now + dt.timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def rescue_expired_leases(session: Session, *, now: dt.datetime | None = None) -> int:
    """Jobs whose worker died mid-run: pending again. Their idempotency keys make the rerun
    harmless at the provider; their attempt stays counted."""
    now = now or utcnow()
    result = session.execute(
        update(OutboxJob)
        .where(OutboxJob.status == JobStatus.RUNNING, OutboxJob.lease_until < now)
        .values(
            status=JobStatus.PENDING,
            lease_owner=None,
            lease_until=None,
            run_after=now,
            last_error=func.coalesce(OutboxJob.last_error, "lease expired: worker stopped"),
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# -- outcomes -------------------------------------------------------------------------------


def complete(
    session: Session, job_ids: Sequence[int], *, worker: str, now: dt.datetime | None = None
) -> int:
    """Mark jobs done, only where this worker still holds the lease."""
    if not job_ids:
        return 0
    result = session.execute(
        update(OutboxJob)
        .where(
            OutboxJob.id.in_(job_ids),
            OutboxJob.lease_owner == worker,
            OutboxJob.status == JobStatus.RUNNING,
        )
        .values(
            status=JobStatus.DONE,
            finished_at=now or utcnow(),
            lease_owner=None,
            lease_until=None,
            last_error=None,
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def backoff_delay(spec: JobKind, attempts: int, rng: random.Random | None = None) -> float:
    """The schedule's delay for this attempt, with ±20% jitter so retries do not stampede."""
    base = spec.backoff[min(max(attempts - 1, 0), len(spec.backoff) - 1)]
    return base * (0.8 + 0.4 * (rng or random).random())


def classify(error: BaseException) -> tuple[bool, float | None, bool]:
    """(permanent, retry after seconds, rate limited) for any error a handler raised."""
    if isinstance(error, (PermanentFailure, ProviderRejected)):
        return True, None, False
    if isinstance(error, RetryLater):
        return False, error.retry_after, error.rate_limited
    if isinstance(error, ProviderRateLimited):
        return False, error.retry_after if error.retry_after is not None else 1.0, True
    return False, None, False


def counts_against_provider(error: BaseException) -> bool:
    """Only a provider's unavailability opens its circuit: not our bad request (4xx), not a
    rate limit it asked us to respect."""
    if isinstance(error, RetryLater):
        return not error.rate_limited
    return isinstance(error, ProviderUnavailable)


def fail(
    session: Session,
    job: Claimed,
    error: BaseException,
    *,
    worker: str,
    now: dt.datetime | None = None,
) -> JobStatus:
    """Record a failed run: retry later, or dead (with an alert)."""
    now = now or utcnow()
    spec = _KINDS.get(job.kind)
    # In words for the Jobs page and the invoice's row, never an exception's class name; and
    # scrubbed: a provider may quote a key or an e-mail address back.
    message = describe(error)
    permanent, retry_after, rate_limited = classify(error)
    # Not a real attempt: a 429 (the provider asks us to wait), nor a probe that found it still
    # down (counted, the probes killed the job they sent in an evening's outage: jobs must wait).
    not_an_attempt = rate_limited or (job.probe and counts_against_provider(error))
    attempts = job.attempts - 1 if not_an_attempt else job.attempts
    if permanent or spec is None or attempts >= job.max_attempts:
        values: dict[str, Any] = dict(status=JobStatus.DEAD, finished_at=now, attempts=attempts)
        status = JobStatus.DEAD
    else:
        delay = retry_after if retry_after is not None else backoff_delay(spec, attempts)
        values = dict(
            status=JobStatus.PENDING, run_after=now + dt.timedelta(seconds=delay), attempts=attempts
        )
        status = JobStatus.PENDING
    result = session.execute(
        update(OutboxJob)
        .where(OutboxJob.id == job.id, OutboxJob.lease_owner == worker)
        .values(lease_owner=None, lease_until=None, last_error=message, **values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) and status is JobStatus.DEAD:
        if spec is not None and spec.on_dead is not None:
            spec.on_dead(session, job.payload, message)
        from backend.platform import incidents  # here: incidents enqueue through this module

        incidents.job_dead(session, job.workspace_id, job.kind, job.provider, attempts, message)
    return status


@dataclass
class DrainReport:
    claimed: int = 0
    done: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)
