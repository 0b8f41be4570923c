"""The scheduler process: runs every job declared with ``@periodic`` in a domain's jobs.py (all
of them found and loaded by ``backend.jobs``), and the outbox's drainer threads."""

from __future__ import annotations

import datetime as dt
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

import structlog
from apscheduler.schedulers.blocking import BlockingScheduler

from backend import jobs
from backend.config import SettingsError, get_settings
from backend.connections import credentials
from backend.db import get_engine
from backend.jobs.drainer import Drainer
from backend.logging import configure
from backend.platform import call_log_writer, readiness
from backend.platform.readiness import Readiness

log = structlog.get_logger("scheduler")


def build_scheduler() -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone="UTC")
    for job in jobs.declared():
        # Short-interval jobs (the heartbeat) run at once, so a fresh start shows as alive.
        first_run = {"next_run_time": dt.datetime.now(dt.UTC)} if job.seconds <= 60 else {}
        scheduler.add_job(
            job.func,
            "interval",
            seconds=job.seconds,
            id=job.id,
            name=job.description,
            # A slow tick is skipped, not queued up behind itself.
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, job.seconds),
            **first_run,
        )
    return scheduler


# Waits between readiness checks: quick at first (a database starting beside us), then every
# 30 s, so a database down for long is not asked many times a second.
WAIT_STEPS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def wait_until_ready(
    check: Callable[[], Readiness], *, give_up_after: float, stopping: threading.Event
) -> Readiness:
    """Check the database until it answers and is migrated, saying what it waits for each time
    the reason changes. ``give_up_after`` 0 waits for ever; a stop signal ends the wait."""
    started = time.monotonic()
    said = ""
    attempt = 0
    while True:
        state = check()
        if state.ready or stopping.is_set():
            return state
        waited = time.monotonic() - started
        if give_up_after and waited >= give_up_after:
            return state
        if state.reason != said:
            log.warning("scheduler.waiting_for_database", reason=state.reason)
            said = state.reason
        step = WAIT_STEPS[min(attempt, len(WAIT_STEPS) - 1)]
        if give_up_after:
            step = min(step, max(0.0, give_up_after - waited))
        stopping.wait(step)
        attempt += 1


def main() -> None:
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure(settings.log_level)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    state = wait_until_ready(
        lambda: readiness.check(get_engine()),
        give_up_after=settings.scheduler_wait_seconds,
        stopping=stopping,
    )
    if not state.ready:
        print(f"scheduler not started: {state.reason}", file=sys.stderr)
        raise SystemExit(1)
    # Jobs would fail one by one on rows they cannot decrypt; refuse at once, saying why.
    problem = credentials.startup_problem(get_engine())
    if problem:
        print(f"scheduler not started: {problem}", file=sys.stderr)
        raise SystemExit(1)
    call_log_writer.start_for_process(get_engine)
    scheduler = build_scheduler()
    drainer = Drainer(
        threads=settings.outbox_threads,
        batch=settings.outbox_batch,
        provider_threads=settings.outbox_provider_threads,
        coalesce=settings.outbox_coalesce_seconds,
    )
    drainer.start()

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("scheduler.stopping", signal=signum)
        drainer.stop()
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    log.info("scheduler.started", jobs=[job.id for job in jobs.declared()])
    scheduler.start()


if __name__ == "__main__":
    main()
