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
from models import (
    CallHour,
    CallMinute,
    InboundEvent,
    InboundStatus,
    IntegrationLog,
    JobStatus,
    OutboxJob,
    utcnow,
)
from tests import factories
from tests.support import tx_guard
from tests.support.calls import add_calls, call


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


def _calls_days_ago(session: Session, workspace_id: int, *ages: int) -> None:
    now = utcnow()
    add_calls(
        session,
        *(
            call(workspace_id, at=now - dt.timedelta(days=age), operation=f"GET /{age}")
            for age in ages
        ),
    )


def test_call_rollups_outlive_the_raw_logs(session: Session) -> None:
    workspace_id = factories.workspace(session).id
    _calls_days_ago(session, workspace_id, 1, 45, 89, 91, 120, 399, 401)
    session.commit()
    # Raw logs kept 30 days here: the rollups do not follow them, nor they the rollups.
    counts = retention.purge_old_rows(session, keep_logs=dt.timedelta(days=30))
    session.commit()
    assert counts["integration_logs"] == 6
    assert counts["integration_call_minutes"] == 4  # older than 90 days
    assert counts["integration_call_hours"] == 1  # older than 400 days
    assert set(session.scalars(select(IntegrationLog.operation))) == {"GET /1"}
    assert set(session.scalars(select(CallMinute.operation))) == {"GET /1", "GET /45", "GET /89"}
    assert set(session.scalars(select(CallHour.operation))) == {
        "GET /1",
        "GET /45",
        "GET /89",
        "GET /91",
        "GET /120",
        "GET /399",
    }
    # With the defaults, the raw logs keep their 90 days as before, the hours 400.
    _calls_days_ago(session, workspace_id, 89, 91)
    session.commit()
    counts = retention.purge_old_rows(session)
    session.commit()
    assert counts["integration_logs"] == 1
    assert counts["integration_call_minutes"] == 1
    assert counts["integration_call_hours"] == 0
    assert set(session.scalars(select(IntegrationLog.operation))) == {"GET /1", "GET /89"}
    assert retention.KEEP_CALL_HOURS > dt.timedelta(days=90) == retention.KEEP_CALL_MINUTES


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
