"""The night shift: retention of old rows, and exclusive periodic jobs on PostgreSQL. (The
alert rules are tested in tests/health/test_rules.py, the orphaned-contract sweep
in tests/pipeline/test_orphaned_contracts.py.)"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from backend.platform import periodic as registry
from backend.platform import retention
from models import InboundEvent, InboundStatus, JobStatus, OutboxJob, utcnow
from tests.support import tx_guard


def _count(session: Session, model: object) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


def test_retention_keeps_what_still_needs_attention(session: Session) -> None:
    old = utcnow() - dt.timedelta(days=60)
    session.add_all(
        [
            OutboxJob(kind="k", idempotency_key="done-old", status=JobStatus.DONE, finished_at=old),
            OutboxJob(kind="k", idempotency_key="dead-old", status=JobStatus.DEAD, finished_at=old),
            OutboxJob(
                kind="k", idempotency_key="done-new", status=JobStatus.DONE, finished_at=utcnow()
            ),
            InboundEvent(
                provider="stripe",
                external_id="e1",
                event_type="t",
                payload={},
                status=InboundStatus.HANDLED,
                received_at=old,
            ),
            InboundEvent(
                provider="stripe",
                external_id="e2",
                event_type="t",
                payload={},
                status=InboundStatus.PENDING,
                received_at=old,
            ),
        ]
    )
    session.commit()
    counts = retention.purge_old_rows(session)
    session.commit()
    assert counts["outbox_jobs"] == 1 and counts["inbound_events"] == 1
    assert set(session.scalars(select(OutboxJob.idempotency_key))) == {"dead-old", "done-new"}
    assert set(session.scalars(select(InboundEvent.external_id))) == {"e2"}


def test_exclusive_job_skips_a_tick_while_another_process_holds_it(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = pg_engine
    monkeypatch.setattr(registry, "get_engine", lambda: engine)
    ran: list[str] = []
    key = registry.advisory_key("night-job")
    with engine.connect() as other:
        other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        assert registry.run_exclusively("night-job", lambda: ran.append("a")) is False
        other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        other.commit()
    assert registry.run_exclusively("night-job", lambda: ran.append("b")) is True
    assert ran == ["b"]
    # The job runs holding the lock but no transaction: it may call a provider.
    held: list[bool] = []
    with engine.connect() as other:
        assert registry.run_exclusively(
            "night-job",
            lambda: held.extend(
                [
                    tx_guard.in_transaction(),
                    not other.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar(),
                ]
            ),
        )
        other.rollback()
    assert held == [False, True]
