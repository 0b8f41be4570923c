"""Scheduled jobs are declared with ``@periodic`` in their domain's ``jobs.py``.

``scheduler.py`` imports ``backend.jobs`` (which imports every domain's ``jobs.py``) and adds
what is registered here to APScheduler. A job declared ``exclusive`` runs once per tick however many
scheduler processes there are: on PostgreSQL it takes an advisory lock, and a process that does
not get it skips the tick.

Tested in tests/platform/test_retention.py (the exclusive lock) and
tests/jobs/test_discovery.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text

from backend.db import get_engine

JobFunc = Callable[[], None]


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    id: str
    func: JobFunc
    seconds: int
    description: str
    exclusive: bool


_REGISTRY: dict[str, PeriodicJob] = {}


def advisory_key(job_id: str) -> int:
    """A stable signed 64-bit key for pg_try_advisory_lock."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:8], "big", signed=True)


def run_exclusively(job_id: str, func: JobFunc) -> bool:
    """Run ``func`` unless another process holds this job's lock. True if it ran."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        func()  # SQLite serves one machine and one scheduler
        return True
    key = advisory_key(job_id)
    with engine.connect() as conn:
        locked = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        # The lock is the connection's, not the transaction's: the transaction ends here, or it
        # would stay open (idle in transaction) for the whole job, its provider calls included
        # (docs/security/transactions.md).
        conn.commit()
        if not locked:
            return False
        try:
            func()
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
    return True


def periodic(
    *, id: str, seconds: int, description: str, exclusive: bool = True
) -> Callable[[JobFunc], JobFunc]:
    def register(func: JobFunc) -> JobFunc:
        if id in _REGISTRY and _REGISTRY[id].func is not func:
            raise ValueError(f"two periodic jobs are declared with the id {id!r}")

        def runner() -> None:
            if exclusive:
                run_exclusively(id, func)
            else:
                func()

        _REGISTRY[id] = PeriodicJob(
            id=id,
            func=runner,
            seconds=seconds,  # type: ignore[arg-type]
            description=description,
            exclusive=exclusive,
        )
        return func

    return register


def declared() -> list[PeriodicJob]:
    return sorted(_REGISTRY.values(), key=lambda job: job.id)
