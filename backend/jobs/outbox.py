"""The outbox's workers inside the scheduler process: a drainer thread that runs due jobs as
soon as they are due (woken at once by PostgreSQL's NOTIFY, otherwise polling every second),
and the periodic rescue of jobs whose worker died."""

from __future__ import annotations

import threading
import time

import structlog
from sqlalchemy import Engine

from backend.config import get_settings
from backend.db import get_engine, session_scope
from backend.jobs.registry import periodic
from backend.jobs.runner import Runner, worker_name
from backend.services import outbox

log = structlog.get_logger("outbox")


@periodic(
    id="rescue-expired-leases",
    seconds=get_settings().outbox_rescue_seconds,
    description="Make jobs of workers that died claimable again.",
)
def rescue_expired_leases() -> None:
    with session_scope() as session:
        rescued = outbox.rescue_expired_leases(session)
    if rescued:
        log.warning("outbox.leases_rescued", jobs=rescued)


class Drainer:
    """Runs outbox jobs continuously in background threads of this process."""

    def __init__(
        self, engine: Engine | None = None, *, threads: int = 1, poll: float = 1.0, batch: int = 200
    ) -> None:
        self._engine = engine or get_engine()
        self._threads = threads
        self._poll = poll
        self._batch = batch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self._threads):
            thread = threading.Thread(target=self._work, name=f"drainer-{index}", daemon=True)
            thread.start()
            self._workers.append(thread)
        if self._engine.dialect.name == "postgresql":
            threading.Thread(target=self._listen, name="outbox-listen", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._workers:
            thread.join(timeout=30)

    def _work(self) -> None:
        runner = Runner(
            self._engine,
            worker_name(),
            batch=self._batch,
            lease_seconds=get_settings().outbox_lease_seconds,
        )
        while not self._stop.is_set():
            try:
                report = runner.run_once()
            except Exception:
                log.exception("outbox.drain_failed")
                report = None
                time.sleep(self._poll)
            if report is None or report.claimed == 0:
                self._wake.wait(self._poll)
                self._wake.clear()

    def _listen(self) -> None:
        """LISTEN on the outbox channel; every NOTIFY wakes the workers."""
        import psycopg

        url = self._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
                    for _ in conn.notifies(timeout=self._poll, stop_after=None):
                        self._wake.set()
                        if self._stop.is_set():
                            return
                    # notifies() returned on timeout: loop to check the stop flag.
            except Exception:
                log.warning("outbox.listen_reconnect")
                time.sleep(1)
