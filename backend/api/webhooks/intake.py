"""Storing verified webhooks on PostgreSQL in batches (group commit), on the event loop, so
that the sidecar keeps up with bursts of thousands of events a second on a couple of cores.

Performance machinery for the sidecar's busiest route (a workspace's Stripe events), measured
by bench/bench_ingest.py (docs/PERFORMANCE.md, "Ingest"); what it stores, and how, is the
inbox's (``backend.platform.inbox.record_statement``).

A request hands its verified event to this process's writers and waits. A writer (an asyncio
task with its own connection) takes every event waiting, up to a batch, stores them with one
statement (``inbox.record_statement``; in autocommit, so it commits on its own), and only
then answers each request: a 2xx still means "stored", durably. While one batch commits the
next one gathers, so a commit and its WAL flush are shared by every event that arrived
meanwhile instead of costing each event one (measured on the benchmark machine: ~40 µs of
database CPU an event in batches of 16, ~350 µs one at a time). The database work stays on
the event loop: handing it to threads cost more here (GIL hand-overs, ~20 futex calls a
request) than the statement itself.

Workers are woken by a NOTIFY sent after the commit from a connection of its own, at most
once per 25 ms a process (see ``inbox.record_many`` for why not inside the transaction).

A batch that fails for its data (a value PostgreSQL refuses) is retried one event at a time,
so a bad event fails alone. A lost connection fails the batch with SQLAlchemy's
OperationalError, which the sidecar answers with a 503 that providers retry. Writers stop
after a few idle seconds and start again on demand. SQLite, a single writer, stores each
event in its own transaction from the thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from anyio import to_thread
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from backend.platform import inbox, outbox
from backend.platform.inbox import Incoming

log = structlog.get_logger("sidecar")

_Waiting = tuple[Incoming, "asyncio.Future[bool]"]


@dataclass
class _LoopState:
    """The writers of one event loop (asyncio objects belong to the loop that made them)."""

    queue: asyncio.Queue[_Waiting] = field(default_factory=asyncio.Queue)
    writers: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    notifier: asyncio.Task[None] | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class IntakeWriter:
    """Batches verified events into committed inserts; see the module's description."""

    IDLE_SECONDS = 5.0
    # At most one NOTIFY per interval from this process: workers busy draining do not need
    # one, so this only bounds how late an idle worker hears of new jobs.
    NOTIFY_INTERVAL_SECONDS = 0.025

    def __init__(
        self, engine: Engine, *, writers: int = 2, max_batch: int = inbox.MAX_RECORD_BATCH
    ) -> None:
        self.engine = engine
        self._writers = writers
        self._max_batch = max_batch
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def record(self, event: Incoming) -> bool:
        """Store ``event`` and its job, committed; False for a duplicate."""
        if self.engine.dialect.name != "postgresql":
            return await to_thread.run_sync(inbox.record_committed, self.engine, event)
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _LoopState()
        future: asyncio.Future[bool] = loop.create_future()
        state.queue.put_nowait((event, future))
        if state.writers < self._writers:
            state.writers += 1
            self._spawn(state, self._write_batches(state))
        return await future

    @staticmethod
    def _spawn(state: _LoopState, work: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        state.tasks.add(task)  # a reference, so that the task is not collected mid-way
        task.add_done_callback(state.tasks.discard)
        return task

    async def _connect(self) -> Any:
        import psycopg  # the postgres extra; only PostgreSQL engines come here

        return await psycopg.AsyncConnection.connect(self._url, autocommit=True)

    async def _write_batches(self, state: _LoopState) -> None:
        connection: Any = None
        try:
            while True:
                try:
                    first = await asyncio.wait_for(state.queue.get(), self.IDLE_SECONDS)
                except TimeoutError:
                    if not state.queue.empty():  # came in as the wait ended
                        continue
                    state.writers -= 1  # no await from here on: record() sees it at once
                    return
                batch = [first]
                while len(batch) < self._max_batch and not state.queue.empty():
                    batch.append(state.queue.get_nowait())
                if connection is None:
                    try:
                        connection = await self._connect()
                    except Exception as exc:
                        _answer(batch, _database_error(exc, "connect"))
                        continue
                if not await self._write(connection, batch, state):
                    await _close(connection)
                    connection = None
        except BaseException:
            state.writers -= 1
            raise
        finally:
            if connection is not None:
                await _close(connection)

    async def _write(self, connection: Any, batch: list[_Waiting], state: _LoopState) -> bool:
        """Store and commit a batch and answer its requests; False if the connection is lost."""
        import psycopg

        statement = inbox.record_statement([event for event, _ in batch])
        try:
            # One statement, so atomic on its own: in autocommit it is one round trip.
            cursor = await connection.execute(statement.sql, statement.params)
            rows = await cursor.fetchall()
        except psycopg.Error as exc:
            if connection.broken or connection.closed:
                _answer(batch, _database_error(exc, statement.sql))
                return False
            if len(batch) == 1 or isinstance(exc, psycopg.OperationalError):
                _answer(batch, _database_error(exc, statement.sql))
                return True
            # Something in the batch was refused: find it by storing them one at a time.
            for index, waiting in enumerate(batch):
                if not await self._write(connection, [waiting], state):
                    _answer(batch[index + 1 :], _database_error(exc, statement.sql))
                    return False
            return True
        outcomes = statement.outcomes(rows)
        for (_, future), stored in zip(batch, outcomes, strict=True):
            if not future.done():  # the request may have gone away meanwhile
                future.set_result(stored)
        if any(outcomes):
            state.wake.set()
            if state.notifier is None:
                state.notifier = self._spawn(state, self._notify(state))
        return True

    async def _notify(self, state: _LoopState) -> None:
        """NOTIFY after commits that added jobs: coalesced, at most one per interval."""
        connection: Any = None
        try:
            while True:
                try:
                    await asyncio.wait_for(state.wake.wait(), self.IDLE_SECONDS)
                except TimeoutError:
                    if state.wake.is_set():  # set as the wait ended
                        continue
                    return
                state.wake.clear()
                try:
                    if connection is None:
                        connection = await self._connect()
                    await connection.execute(f"NOTIFY {outbox.NOTIFY_CHANNEL}")
                except Exception as exc:
                    # Workers still poll: a lost wake-up only delays jobs by their poll interval.
                    log.warning("outbox.notify_failed", error=type(exc).__name__)
                    if connection is not None:
                        await _close(connection)
                        connection = None
                await asyncio.sleep(self.NOTIFY_INTERVAL_SECONDS)
        finally:
            state.notifier = None
            if connection is not None:
                await _close(connection)


def _answer(batch: Sequence[_Waiting], error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)


def _database_error(exc: Exception, statement: str) -> Exception:
    """psycopg's error as SQLAlchemy's (OperationalError, DataError …), which the sidecar's
    handlers know: an OperationalError becomes a 503."""
    import psycopg

    if isinstance(exc, psycopg.Error):
        return DBAPIError.instance(statement, None, exc, psycopg.Error)
    return exc


async def _close(connection: Any) -> None:
    # Closing a broken connection may fail too; there is nothing more to do with it.
    with contextlib.suppress(Exception):
        await connection.close()
