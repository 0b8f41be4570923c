"""Writes the call log: takes the calls ``backend/integrations/call_log.py`` buffered, in
batches, and stores each as an ``integration_logs`` row while adding it to its minute's and its
hour's rollups (``integration_call_minutes``, ``integration_call_hours``) and to its provider's
last success or error (``provider_call_latest``), all in one short transaction of its own.

Why a buffer and a thread rather than a row in the caller's transaction: a provider job commits
its own work once per call, and an insert into a hot table there would hold the job's
transaction (and, on SQLite, the database's one writer) longer for every call; batched, a
second's calls cost one transaction. The rollups are summed here, at write time, so that they
are exact without a job that scans the raw logs every minute; concurrent writers (every process
has one) add into the same rows with an upsert, in one order (no deadlock between two batches).

A batch that cannot be written (the database is down) is put back and tried again at the next
tick; the buffer is bounded, so a long outage drops the oldest calls rather than the process.

Tested in tests/platform/test_call_log_writer.py.
"""

from __future__ import annotations

import atexit
import bisect
import datetime as dt
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Engine, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from backend.db import session_scope
from backend.integrations import call_log
from backend.integrations.call_log import OK, ProviderCall
from models import (
    BUCKET_COLUMNS,
    LATENCY_BUCKETS_MS,
    OUTCOME_COLUMNS,
    CallHour,
    CallMinute,
    Integration,
    IntegrationLog,
    ProviderCallLatest,
    Workspace,
)

log = structlog.get_logger("call_log")

INTERVAL_SECONDS = 1.0


def bucket_of(latency_ms: int) -> str:
    """The histogram column a latency falls in (upper bounds inclusive, as Prometheus's ``le``)."""
    index = bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)
    return BUCKET_COLUMNS[index]


def minute_of(at: dt.datetime) -> dt.datetime:
    return at.replace(second=0, microsecond=0)


def hour_of(at: dt.datetime) -> dt.datetime:
    return at.replace(minute=0, second=0, microsecond=0)


@dataclass
class _Counts:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOME_COLUMNS, 0))
    buckets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKET_COLUMNS, 0))
    latency_ms_sum: int = 0

    def add(self, call: ProviderCall) -> None:
        self.counts[call.outcome] += 1
        self.buckets[bucket_of(call.latency_ms)] += 1
        self.latency_ms_sum += call.latency_ms

    def row(self, key: tuple[int, str, str, dt.datetime], column: str) -> dict[str, Any]:
        workspace_id, provider, operation, when = key
        return {
            "workspace_id": workspace_id,
            "provider": provider,
            "operation": operation,
            column: when,
            "latency_ms_sum": self.latency_ms_sum,
            **self.counts,
            **self.buckets,
        }


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


def write(session: Session, calls: Iterable[ProviderCall]) -> int:
    """Store ``calls`` and add them to their rollups, in ``session``'s transaction."""
    calls = [c for c in calls if c.outcome in OUTCOME_COLUMNS]
    if not calls:
        return 0
    wanted = {c.workspace_id for c in calls if c.workspace_id is not None}
    # A workspace deleted since its calls were made: its calls go with it.
    existing = (
        set(session.scalars(select(Workspace.id).where(Workspace.id.in_(wanted))))
        if wanted
        else set()
    )
    calls = [c for c in calls if c.workspace_id is None or c.workspace_id in existing]
    integration_of = _integrations(session, calls)
    session.execute(
        insert(IntegrationLog),
        [
            {
                "workspace_id": c.workspace_id,
                "integration_id": c.integration_id
                or (integration_of.get((c.workspace_id, c.provider)) if c.workspace_id else None),
                "provider": c.provider,
                "operation": c.operation,
                "outcome": c.outcome,
                "http_status": c.http_status,
                "latency_ms": c.latency_ms,
                "error": c.error,
                "job_id": c.job_id,
                "at": c.at,
            }
            for c in calls
        ],
    )
    _add_to_rollups(session, calls)
    _note_latest(session, calls)
    return len(calls)


def _integrations(session: Session, calls: list[ProviderCall]) -> dict[tuple[int, str], int]:
    pairs = {(c.workspace_id, c.provider) for c in calls if c.workspace_id and not c.integration_id}
    if not pairs:
        return {}
    rows = session.execute(
        select(Integration.workspace_id, Integration.provider, Integration.id).where(
            Integration.workspace_id.in_({w for w, _ in pairs})
        )
    ).all()
    return {(w, p): i for w, p, i in rows if (w, p) in pairs}


def _add_to_rollups(session: Session, calls: list[ProviderCall]) -> None:
    for model, column, truncate in (
        (CallMinute, "minute", minute_of),
        (CallHour, "hour", hour_of),
    ):
        counts: dict[tuple[int, str, str, dt.datetime], _Counts] = defaultdict(_Counts)
        for c in calls:
            # The platform's own calls (no workspace) are logged, not rolled up: every figure
            # the console shows is a workspace's.
            if c.workspace_id is not None:
                counts[(c.workspace_id, c.provider, c.operation, truncate(c.at))].add(c)
        if not counts:
            continue
        table = model.__table__
        stmt = _insert(session, table)
        summed = ("latency_ms_sum", *OUTCOME_COLUMNS, *BUCKET_COLUMNS)
        stmt = stmt.on_conflict_do_update(
            index_elements=["workspace_id", "provider", "operation", column],
            set_={name: table.c[name] + stmt.excluded[name] for name in summed},
        )
        # Sorted: two writers adding to the same rows lock them in the same order.
        session.execute(stmt, [counts[key].row(key, column) for key in sorted(counts)])


def _note_latest(session: Session, calls: list[ProviderCall]) -> None:
    latest: dict[tuple[int, str], dict[str, Any]] = {}
    for c in calls:
        if c.workspace_id is None:
            continue
        row = latest.setdefault(
            (c.workspace_id, c.provider),
            {
                "workspace_id": c.workspace_id,
                "provider": c.provider,
                "last_ok_at": None,
                "last_error_at": None,
                "last_error": None,
                "last_error_operation": None,
            },
        )
        if c.outcome == OK:
            if row["last_ok_at"] is None or c.at > row["last_ok_at"]:
                row["last_ok_at"] = c.at
        elif row["last_error_at"] is None or c.at > row["last_error_at"]:
            row.update(last_error_at=c.at, last_error=c.error, last_error_operation=c.operation)
    if not latest:
        return
    table = ProviderCallLatest.__table__
    for key in sorted(latest):
        values = latest[key]
        stmt = _insert(session, table).values(**values)
        changes: dict[str, Any] = {}
        if values["last_ok_at"] is not None:
            changes["last_ok_at"] = stmt.excluded.last_ok_at
        if values["last_error_at"] is not None:
            changes.update(
                last_error_at=stmt.excluded.last_error_at,
                last_error=stmt.excluded.last_error,
                last_error_operation=stmt.excluded.last_error_operation,
            )
        session.execute(
            stmt.on_conflict_do_update(index_elements=["workspace_id", "provider"], set_=changes)
        )


def flush(engine: Engine) -> int:
    """Write what is buffered now; on failure it goes back to the buffer and the error is
    raised (the writer's thread logs it and tries again)."""
    calls = call_log.BUFFER.take()
    if not calls:
        return 0
    try:
        with session_scope(engine) as session:
            return write(session, calls)
    except Exception:
        call_log.BUFFER.put_back(calls)
        raise


class Writer:
    """The process's writer thread: a batch when the buffer holds one, else every second."""

    def __init__(self, engine: Callable[[], Engine], interval: float = INTERVAL_SECONDS) -> None:
        self._engine = engine
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="call-log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()
        atexit.register(self.stop)

    def stop(self) -> None:
        self._stop.set()
        call_log.BUFFER.ready.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            flush(self._engine())
        except Exception as exc:
            log.warning("call_log.final_flush_failed", error=type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.is_set():
            call_log.BUFFER.ready.wait(self._interval)
            if self._stop.is_set():
                return
            try:
                flush(self._engine())
            except Exception as exc:
                log.warning("call_log.write_failed", error=type(exc).__name__)
                self._stop.wait(self._interval)


_PROCESS_WRITER: Writer | None = None
_LOCK = threading.Lock()


def start_for_process(engine: Callable[[], Engine]) -> Writer:
    """One writer per process (the sidecar, the scheduler, the console each call this)."""
    global _PROCESS_WRITER
    with _LOCK:
        if _PROCESS_WRITER is None:
            _PROCESS_WRITER = Writer(engine)
            _PROCESS_WRITER.start()
        return _PROCESS_WRITER
