"""The sidecar watches the scheduler: a scheduler cannot report its own death, so every
``HUB_SCHEDULER_WATCH_SECONDS`` (30) the served sidecar reads the newest heartbeat and raises
the platform's "scheduler stopped" incident when it is over a minute old, or settles it when
fresh (``backend/health/evaluate.py``, ``watch_scheduler``). A background task of the app's
lifespan, off the event loop in a thread; a failure is logged and the next round tries again,
never taking the sidecar down. Apps built by tests do not start it unless they ask
(``app.state.watch_scheduler``).

Tested in tests/api/test_scheduler_watch.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator

import structlog
from sqlalchemy import Engine

from backend.db import session_scope
from backend.health import evaluate, platform_notices

log = structlog.get_logger("scheduler_watch")


def check_once(
    engine: Engine, *, now: dt.datetime | None = None, alert_url: str | None = None
) -> bool | None:
    """One look: True when the scheduler looks stopped, None when the look itself failed.
    The platform's notices this raised (or any left unposted) go to ``alert_url``."""
    try:
        with session_scope(engine) as session:
            stopped = evaluate.watch_scheduler(session, now=now)
        platform_notices.post_due(engine, alert_url)
    except Exception as exc:  # the sidecar serves webhooks whatever happens here
        log.warning("scheduler_watch.failed", error=f"{type(exc).__name__}: {exc}")
        return None
    if stopped:
        log.error("scheduler_watch.stopped")
    return stopped


async def watch(engine: Engine, every: float, alert_url: str | None = None) -> None:
    while True:
        await asyncio.to_thread(check_once, engine, alert_url=alert_url)
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def running(
    engine: Engine, every: float, alert_url: str | None = None
) -> AsyncIterator[asyncio.Task[None] | None]:
    """The watch for the lifespan of the app; nothing when ``every`` is 0."""
    if every <= 0:
        yield None
        return
    task = asyncio.create_task(watch(engine, every, alert_url), name="scheduler-watch")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
