"""Runs outbox jobs: claims a batch, runs each job's handler, records the outcome, commits.

Jobs that only change the database (``provider is None``, e.g. applying an inbound event) run
together in one transaction (one per 0.1 s of work), so a batch of thousands costs a commit or
a few; if one fails, they run again with each job inside a savepoint, so that the failing one
rolls back alone. Jobs that call a provider run one per transaction: the provider's answer is
committed as soon as it is known, and a worker that dies mid-job leaves only that job to be
rerun (with the same idempotency key) when its lease expires.

Tested in tests/platform/test_outbox.py and tests/jobs/test_reliability.py.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.connections import provider_status
from backend.db import session_scope
from backend.integrations import call_log
from backend.platform import circuits, outbox, outbox_operators
from backend.platform.outbox import Claimed, DrainReport, JobContext, PermanentFailure
from backend.platform.provider_failures import describe
from models import JobStatus

log = structlog.get_logger("outbox")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 10000}"


@dataclass
class Runner:
    engine: Engine
    worker: str
    batch: int = 200
    lease_seconds: int = 60
    # Local jobs commit together, at least this often (see _run_chunk).
    commit_seconds: float = 0.1
    # Which jobs it claims: None any, False only local jobs, True only provider jobs.
    provider_jobs: bool | None = None
    # Local jobs are prepared (JobKind.prepare) this many at a time: about what one commit
    # holds, so that little is loaded for jobs the next transaction runs.
    prepare_ahead: int = 32

    def claim(self, limit: int | None = None) -> list[Claimed]:
        """Claim up to ``limit`` (default: the batch) due jobs of this runner's sort."""
        with session_scope(self.engine) as session:
            return outbox.claim(
                session,
                worker=self.worker,
                limit=limit or self.batch,
                lease_seconds=self.lease_seconds,
                provider_jobs=self.provider_jobs,
            )

    def run_claimed(self, job: Claimed) -> DrainReport:
        """Run one job this runner claimed, in its own transaction (as provider jobs run)."""
        report = DrainReport(claimed=1)
        self._run_alone(job, report)
        return report

    def run_once(self) -> DrainReport:
        report = DrainReport()
        claimed = self.claim()
        report.claimed = len(claimed)
        specs = outbox.kinds()
        local: list[Claimed] = []
        remote: list[Claimed] = []
        for job in claimed:
            spec = specs.get(job.kind)
            (local if spec is not None and spec.provider is None else remote).append(job)
        if local:
            self._run_together(local, report)
        for job in remote:
            self._run_alone(job, report)
        return report

    def _context(self, job: Claimed, release: Callable[[], None] | None = None) -> JobContext:
        context = JobContext(
            job.id,
            job.kind,
            job.payload,
            job.idempotency_key,
            job.attempts,
            job.workspace_id,
            self.worker,
        )
        return replace(context, release=release) if release else context

    def _run_together(self, jobs: list[Claimed], report: DrainReport) -> None:
        while jobs:
            jobs = jobs[self._run_chunk(jobs, report) :]

    def _run_chunk(self, jobs: list[Claimed], report: DrainReport) -> int:
        """Run the first jobs of ``jobs`` in one transaction, as many as fit in
        ``commit_seconds``; returns how many ran (done or failed).

        Optimistically without savepoints (two round trips a job saved: most of a no-op job's
        cost); if one fails, that transaction rolls back and the same jobs run again, one
        savepoint each, so that the failure is isolated. Local jobs only write to the database,
        so a rolled-back run leaves nothing behind. The time limit keeps a large batch of slow
        jobs from holding every effect back until the last one: each chunk commits as it ends.
        """
        specs = outbox.kinds()
        deadline = time.monotonic() + self.commit_seconds
        count = len(jobs)
        loaded: list[object] = []  # what prepare hooks loaded, held until the commit
        try:
            with session_scope(self.engine) as session:
                for index, job in enumerate(jobs):
                    count = index + 1  # includes this job if it fails
                    if index % self.prepare_ahead == 0:
                        ahead = jobs[index : index + self.prepare_ahead]
                        loaded.append(self._prepare(session, ahead, specs))
                    specs[job.kind].handler(session, self._context(job))
                    # Not before the jobs prepared together have run: on a busy machine a
                    # chunk of one or two jobs would load the next 32 jobs' rows for each.
                    if time.monotonic() >= deadline and (
                        count % self.prepare_ahead == 0 or count == len(jobs)
                    ):
                        break
                report.done += outbox.complete(
                    session, [job.id for job in jobs[:count]], worker=self.worker
                )
            return count
        except Exception:  # noqa: S110 - found and recorded by the isolating run below
            pass
        with session_scope(self.engine) as session:
            done: list[int] = []
            failed: list[tuple[Claimed, BaseException]] = []
            for job in jobs[:count]:
                savepoint = session.begin_nested()
                try:
                    specs[job.kind].handler(session, self._context(job))
                    savepoint.commit()
                    done.append(job.id)
                except Exception as exc:
                    savepoint.rollback()
                    failed.append((job, exc))
            report.done += outbox.complete(session, done, worker=self.worker)
            for job, error in failed:
                status = outbox.fail(session, job, error, worker=self.worker)
                self._tally(report, status, job, error)
        return count

    def _prepare(
        self, session: Session, jobs: list[Claimed], specs: dict[str, outbox.JobKind]
    ) -> list[object]:
        """Let each kind with a ``prepare`` hook load what the next jobs will read."""
        by_hook: dict[outbox.PrepareHook, list[JobContext]] = {}
        for job in jobs:
            prepare = specs[job.kind].prepare
            if prepare is not None:
                by_hook.setdefault(prepare, []).append(self._context(job))
        return [prepare(session, contexts) for prepare, contexts in by_hook.items()]

    def _run_alone(self, job: Claimed, report: DrainReport) -> None:
        spec = outbox.kinds().get(job.kind)
        lease = (spec.lease_seconds if spec else None) or self.lease_seconds
        keeper = _LeaseKeeper(self.engine, job.id, self.worker, lease)
        keeper.start()
        error: BaseException | None = None
        try:
            if spec is None:
                raise PermanentFailure(f"no handler is declared for job kind {job.kind!r}")
            with (
                session_scope(self.engine) as session,
                call_log.scope(workspace_id=job.workspace_id, job_id=job.id),
            ):
                spec.handler(session, self._context(job, release=session.commit))
                finished = outbox.complete(session, [job.id], worker=self.worker)
                if spec.provider:
                    self._succeeded(session, job, spec.provider)
            report.done += finished
        except Exception as exc:
            error = exc
        finally:
            keeper.stop()
        if error is None:
            return
        with session_scope(self.engine) as session:
            status = outbox.fail(session, job, error, worker=self.worker)
            if spec and spec.provider:
                if outbox.counts_against_provider(error):
                    circuits.record(
                        # The breaker of the account the job called as (the workspace's), and
                        # scrubbed like the job's error: it is shown on the workspace's pages.
                        session,
                        provider=spec.provider,
                        workspace_id=job.workspace_id,
                        ok=False,
                        error=describe(error),
                    )
                if job.workspace_id is not None:
                    # A refused key turns the integration Error; an outage is noted on it.
                    provider_status.failed(
                        session, workspace_id=job.workspace_id, provider=spec.provider, error=error
                    )
        self._tally(report, status, job, error)

    @staticmethod
    def _succeeded(session: Session, job: Claimed, provider: str) -> None:
        """The provider answered: a breaker this closes releases every job waiting on that
        account now, and an integration in Error (or marked unavailable) recovers."""
        closed = circuits.record(session, provider=provider, workspace_id=job.workspace_id, ok=True)
        if closed == circuits.RECLOSED:
            outbox_operators.wake_waiting(session, provider=provider, workspace_id=job.workspace_id)
        if job.workspace_id is not None:
            provider_status.succeeded(session, workspace_id=job.workspace_id, provider=provider)

    @staticmethod
    def _tally(report: DrainReport, status: JobStatus, job: Claimed, error: BaseException) -> None:
        if status is JobStatus.DEAD:
            report.dead += 1
        else:
            report.retried += 1
        report.errors.append(f"{job.kind}#{job.id}: {type(error).__name__}")
        # The error's text may quote a provider's answer; never the payload.
        log.warning(
            "outbox.job_failed",
            job_id=job.id,
            kind=job.kind,
            attempt=job.attempts,
            outcome=status.value,
            error=type(error).__name__,
        )


class _LeaseKeeper:
    """Extends a running job's lease every third of its length, so a slow provider call is
    not mistaken for a dead worker."""

    def __init__(self, engine: Engine, job_id: int, worker: str, seconds: int) -> None:
        self._engine, self._job_id, self._worker, self._seconds = engine, job_id, worker, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._seconds / 3):
            try:
                with session_scope(self._engine) as session:
                    outbox.extend_lease(
                        session, job_id=self._job_id, worker=self._worker, seconds=self._seconds
                    )
            except Exception:
                log.warning("outbox.lease_extension_failed", job_id=self._job_id)


def drain(engine: Engine, *, worker: str, max_seconds: float, batch: int = 200) -> DrainReport:
    """Run batches until the queue has nothing due or ``max_seconds`` pass."""
    runner = Runner(engine, worker, batch=batch)
    total = DrainReport()
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        report = runner.run_once()
        total.claimed += report.claimed
        total.done += report.done
        total.retried += report.retried
        total.dead += report.dead
        total.errors += report.errors[:20]
        if report.claimed == 0:
            break
    return total
