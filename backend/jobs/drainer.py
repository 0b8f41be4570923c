"""The outbox's workers inside the scheduler process: drainer threads that run due jobs as
soon as they are due (woken at once by PostgreSQL's NOTIFY, otherwise polling every second).

Jobs that call a provider spend their time waiting: for the provider's answer and for their
turn under its rate limit. Given provider threads, they run apart from local jobs: one thread
claims them only as fast as a pool of that many threads takes them, each job's lease starting
when it starts, so that enough of them wait at once to use the provider's whole rate limit
(Stripe's 25 requests a second at a few tens of milliseconds each takes several) while the
local jobs keep their own threads and batches. (The periodic rescue of expired leases is
declared in platform/jobs.py.)
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Engine

from backend.config import get_settings
from backend.db import get_engine
from backend.jobs.runner import Runner, worker_name
from backend.platform import outbox

if TYPE_CHECKING:
    from psycopg import Notify

log = structlog.get_logger("outbox")


class _Wakeup:
    """Wakes one waiting worker per signal; a signal given while no worker waits is kept for
    the next one that does (none is lost, none wakes every worker for one job's worth)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._pending = False

    def signal(self, *, everyone: bool = False) -> None:
        with self._condition:
            self._pending = True
            if everyone:
                self._condition.notify_all()
            else:
                self._condition.notify()

    def wait(self, timeout: float) -> None:
        with self._condition:
            if not self._pending:
                self._condition.wait(timeout)
            self._pending = False


class Drainer:
    """Runs outbox jobs continuously in background threads of this process.

    ``threads`` drainer threads claim ``batch`` jobs at a time. With ``provider_threads`` they
    run local jobs only, and a dispatcher thread hands jobs that call a provider to a pool of
    that many threads, claiming no more than the pool has free; without, the drainer threads
    run every job, provider jobs one after the other.

    On PostgreSQL a NOTIFY wakes one drainer thread, at most once per ``coalesce`` seconds:
    webhooks arriving a few milliseconds apart are then applied as one batch, in one
    transaction, rather than each paying for its own claim and commit (at 200 events a second
    that is most of the work). A thread that claimed less than a full batch waits for the next
    wake-up rather than claiming again at once: anything that arrived meanwhile has notified.
    """

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        threads: int = 1,
        poll: float = 1.0,
        batch: int = 200,
        provider_threads: int = 0,
        coalesce: float = 0.0,
    ) -> None:
        self._engine = engine or get_engine()
        self._threads = threads
        self._poll = poll
        self._batch = batch
        self._provider_threads = provider_threads
        self._coalesce = coalesce
        # Only PostgreSQL announces new jobs; elsewhere a partial batch is followed by a claim.
        self._notified = self._engine.dialect.name == "postgresql"
        self._wake = _Wakeup()
        self._provider_wake = threading.Event()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._slots = threading.Semaphore(provider_threads)
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        for index in range(self._threads):
            thread = threading.Thread(target=self._work, name=f"drainer-{index}", daemon=True)
            thread.start()
            self._workers.append(thread)
        if self._provider_threads:
            self._pool = ThreadPoolExecutor(self._provider_threads, thread_name_prefix="provider")
            thread = threading.Thread(target=self._dispatch, name="dispatcher", daemon=True)
            thread.start()
            self._workers.append(thread)
        if self._engine.dialect.name == "postgresql":
            threading.Thread(target=self._listen, name="outbox-listen", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.signal(everyone=True)
        self._provider_wake.set()
        for thread in self._workers:
            thread.join(timeout=30)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _runner(self, provider_jobs: bool | None, batch: int) -> Runner:
        return Runner(
            self._engine,
            worker_name(),
            batch=batch,
            lease_seconds=get_settings().outbox_lease_seconds,
            provider_jobs=provider_jobs,
        )

    def _work(self) -> None:
        runner = self._runner(False if self._provider_threads else None, self._batch)
        while not self._stop.is_set():
            try:
                report = runner.run_once()
            except Exception:
                log.exception("outbox.drain_failed")
                report = None
                time.sleep(self._poll)
            idle = report is None or report.claimed == 0
            if idle or (self._notified and report is not None and report.claimed < self._batch):
                self._wake.wait(self._poll)

    def _dispatch(self) -> None:
        """Claim provider jobs as pool threads come free, and hand each to one."""
        runner = self._runner(True, self._provider_threads)
        pool = self._pool
        assert pool is not None
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=self._poll):
                continue
            free = 1
            while free < self._provider_threads and self._slots.acquire(blocking=False):
                free += 1
            try:
                claimed = runner.claim(limit=free)
            except Exception:
                log.exception("outbox.dispatch_failed")
                claimed = []
            for _ in range(free - len(claimed)):
                self._slots.release()
            for index, job in enumerate(claimed):
                # A half-open circuit's probe comes on top of the limit: it holds no slot.
                pool.submit(self._run_provider_job, runner, job, index < free)
            if not claimed:
                self._provider_wake.wait(self._poll)
                self._provider_wake.clear()

    def _run_provider_job(self, runner: Runner, job: outbox.Claimed, slot: bool) -> None:
        try:
            runner.run_claimed(job)
        except Exception:
            log.exception("outbox.job_crashed", job_id=job.id, kind=job.kind)
        finally:
            if slot:
                self._slots.release()

    def _route(self, notifies: list[Notify]) -> bool:
        """Wake the provider threads for a provider job's NOTIFY; True if any NOTIFY is for
        local jobs (the caller wakes a drainer thread)."""
        local = False
        for notify in notifies:
            if self._provider_threads and notify.payload == outbox.NOTIFY_PROVIDER_JOB:
                self._provider_wake.set()
            else:
                local = True
        return local

    def _listen(self) -> None:
        """LISTEN on the outbox channel; a NOTIFY wakes the workers of its kind of job."""
        import psycopg

        url = self._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
                    woke = 0.0
                    while not self._stop.is_set():
                        # The first NOTIFY, or nothing within the poll interval.
                        first = list(conn.notifies(timeout=self._poll, stop_after=1))
                        if not self._route(first):
                            continue
                        # Local jobs: a worker at most once per interval. What arrives in the
                        # meantime is read now (nothing piles up on the connection), and this
                        # one wake-up covers it.
                        wait = woke + self._coalesce - time.monotonic()
                        if wait > 0:
                            self._stop.wait(wait)
                        self._route(list(conn.notifies(timeout=0)))
                        woke = time.monotonic()
                        self._wake.signal()
            except Exception:
                log.warning("outbox.listen_reconnect")
                time.sleep(1)
