"""The scheduler process: runs every job declared with ``@periodic`` in a domain's jobs.py (all
of them found and loaded by ``backend.jobs``), and the outbox's drainer threads."""

from __future__ import annotations

import datetime as dt
import signal
import sys
from types import FrameType

import structlog
from apscheduler.schedulers.blocking import BlockingScheduler

from backend import jobs
from backend.config import SettingsError, get_settings
from backend.connections import credentials
from backend.db import get_engine
from backend.jobs.drainer import Drainer
from backend.logging import configure
from backend.platform import readiness

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


def main() -> None:
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure(settings.log_level)
    state = readiness.check(get_engine())
    if not state.ready:
        print(f"scheduler not started: {state.reason}", file=sys.stderr)
        raise SystemExit(1)
    # Jobs would fail one by one on rows they cannot decrypt; refuse at once, saying why.
    problem = credentials.startup_problem(get_engine())
    if problem:
        print(f"scheduler not started: {problem}", file=sys.stderr)
        raise SystemExit(1)
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
