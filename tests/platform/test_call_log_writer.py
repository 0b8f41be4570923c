"""The call log's writer: rows as recorded, minute rollups that add up across batches and
writers, the latest success and error per provider, and a batch that fails goes back."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.integrations import call_log
from backend.platform import call_log_writer
from models import CallHour, CallMinute, IntegrationLog, ProviderCallLatest
from tests import factories
from tests.support.calls import call

T0 = dt.datetime(2027, 3, 1, 12, 0, 10, tzinfo=dt.UTC)


def test_rows_and_rollups_add_up_across_batches(engine: Engine) -> None:
    with Session(engine) as session:
        ws = factories.workspace(session).id
        session.commit()
    first = [
        call(ws, outcome="ok", latency_ms=8, at=T0),
        call(ws, outcome="ok", latency_ms=120, at=T0 + dt.timedelta(seconds=20)),
        call(ws, outcome="rate_limited", latency_ms=40, at=T0 + dt.timedelta(seconds=30)),
    ]
    second = [
        call(ws, outcome="timeout", latency_ms=10_000, at=T0 + dt.timedelta(seconds=40)),
        call(ws, outcome="ok", latency_ms=60, at=T0 + dt.timedelta(minutes=1)),
        call(None, outcome="ok", at=T0),  # the platform's own: logged, not rolled up
    ]
    for batch in (first, second):
        for c in batch:
            call_log.record(c)
        assert call_log_writer.flush(engine) == len(batch)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(IntegrationLog)) == 6
        minutes = session.scalars(select(CallMinute).order_by(CallMinute.minute)).all()
        assert [(m.minute, m.ok, m.rate_limited, m.timeout) for m in minutes] == [
            (T0.replace(second=0), 2, 1, 1),
            (T0.replace(second=0) + dt.timedelta(minutes=1), 1, 0, 0),
        ]
        (hour,) = session.scalars(select(CallHour)).all()
        assert (hour.hour, hour.ok, hour.rate_limited, hour.timeout) == (
            T0.replace(minute=0, second=0),
            3,
            1,
            1,
        )
        first_minute = minutes[0]
        assert (first_minute.le_10, first_minute.le_50, first_minute.le_250) == (1, 1, 1)
        assert first_minute.le_10000 == 1
        assert first_minute.latency_ms_sum == 8 + 120 + 40 + 10_000
        latest = session.get_one(ProviderCallLatest, (ws, "stripe"))
        assert latest.last_ok_at == T0 + dt.timedelta(minutes=1)
        assert latest.last_error_at == T0 + dt.timedelta(seconds=40)
        assert latest.last_error == "HTTP 503 Service Unavailable"


def test_a_batch_that_cannot_be_written_goes_back(engine: Engine) -> None:
    with Session(engine) as session:
        ws = factories.workspace(session).id
        session.commit()
    call_log.record(call(ws, at=T0))
    broken = engine.execution_options(schema_translate_map={None: "no_such_schema"})
    with pytest.raises(Exception):  # noqa: B017 - whichever error the database gives
        call_log_writer.flush(broken)
    assert len(call_log.BUFFER) == 1
    assert call_log_writer.flush(engine) == 1


def test_calls_of_a_deleted_workspace_are_dropped(engine: Engine) -> None:
    with Session(engine) as session:
        ws = factories.workspace(session).id
        session.commit()
    call_log.record(call(ws + 1000, at=T0))
    call_log.record(call(ws, at=T0))
    assert call_log_writer.flush(engine) == 1


@pytest.mark.parametrize(
    ("latency", "column"), [(0, "le_10"), (10, "le_10"), (11, "le_25"), (30_001, "le_inf")]
)
def test_buckets_are_upper_bounds(latency: int, column: str) -> None:
    assert call_log_writer.bucket_of(latency) == column
