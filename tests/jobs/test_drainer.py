"""The scheduler's drainer threads: woken by PostgreSQL's NOTIFY, one at a time, with nothing
lost when wake-ups are coalesced."""

from __future__ import annotations

import threading
import time

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.jobs.drainer import Drainer, _Wakeup
from backend.platform import outbox
from models import JobStatus, OutboxJob


def test_a_wakeup_given_while_nobody_waits_is_kept_for_the_next_waiter() -> None:
    wakeup = _Wakeup()
    wakeup.signal()
    started = time.monotonic()
    wakeup.wait(30)  # returns at once: the signal was kept
    assert time.monotonic() - started < 10
    # ... and only once.
    waiter = threading.Thread(target=wakeup.wait, args=(30,))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()
    wakeup.signal()
    waiter.join(10)
    assert not waiter.is_alive()


def test_one_signal_wakes_one_waiter_not_all() -> None:
    wakeup = _Wakeup()
    waiters = [threading.Thread(target=wakeup.wait, args=(30,)) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.2)  # all three waiting
    wakeup.signal()
    for waiter in waiters:
        waiter.join(0.5)
    assert sum(waiter.is_alive() for waiter in waiters) == 2
    wakeup.signal(everyone=True)
    for waiter in waiters:
        waiter.join(10)
    assert not any(waiter.is_alive() for waiter in waiters)


@outbox.job_kind("test.drainer_noop")
def _noop(session: Session, job: outbox.JobContext) -> None:
    return None


def test_jobs_committed_one_by_one_while_workers_run_are_all_done_without_polling(
    pg_engine: Engine,
) -> None:
    # The poll is far longer than the deadline: every job must be run because its NOTIFY woke
    # a worker, although wake-ups are coalesced and a worker that claimed a partial batch
    # waits for the next one rather than claiming again.
    drainer = Drainer(pg_engine, threads=2, poll=120, batch=5, coalesce=0.05)
    drainer.start()
    try:
        time.sleep(0.5)  # listening
        for n in range(60):
            with Session(pg_engine) as session:
                outbox.enqueue(
                    session, kind="test.drainer_noop", payload={}, idempotency_key=f"d{n}"
                )
                session.commit()
            time.sleep(0.002 * (n % 4))
        deadline = time.monotonic() + 30
        while True:
            with Session(pg_engine) as session:
                done = session.scalar(
                    select(func.count())
                    .select_from(OutboxJob)
                    .where(OutboxJob.status == JobStatus.DONE)
                )
            if done == 60:
                break
            assert time.monotonic() < deadline, f"{done} of 60 done"
            time.sleep(0.05)
    finally:
        drainer.stop()


class _CountingWakeup(_Wakeup):
    def __init__(self) -> None:
        super().__init__()
        self.signals = 0

    def signal(self, *, everyone: bool = False) -> None:
        self.signals += 1
        super().signal(everyone=everyone)


def test_a_burst_of_notifies_is_read_at_once_and_wakes_a_worker_once_or_twice(
    pg_engine: Engine,
) -> None:
    # Read one per interval instead, 100 NOTIFYs would keep waking workers for 100 intervals
    # (and pile up on the connection while jobs keep arriving faster than that).
    drainer = Drainer(pg_engine, threads=1, poll=120, coalesce=0.1)
    wakeup = _CountingWakeup()
    drainer._wake = wakeup
    drainer.start()
    try:
        time.sleep(0.5)  # listening
        with pg_engine.connect() as conn:
            for _ in range(100):
                conn.exec_driver_sql(f"NOTIFY {outbox.NOTIFY_CHANNEL}")
                conn.commit()
        time.sleep(1.5)  # 15 intervals
        assert 1 <= wakeup.signals <= 3, wakeup.signals
    finally:
        drainer.stop()
