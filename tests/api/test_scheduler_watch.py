"""The sidecar's watch of the scheduler's heartbeat: one look raises or settles the platform's
incident, a failed look is logged and never raised, and the lifespan task runs it."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from backend.api import scheduler_watch
from backend.health import rules
from backend.platform import heartbeat
from models import Alert, AlertState

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_one_look_raises_while_stale_and_settles_when_fresh(engine: Engine) -> None:
    with Session(engine) as session:
        heartbeat.beat(session, instance="sched-1", now=T0)
        session.commit()
    assert scheduler_watch.check_once(engine, now=T0 + dt.timedelta(seconds=30)) is False
    assert scheduler_watch.check_once(engine, now=T0 + dt.timedelta(seconds=90)) is True
    with Session(engine) as session:
        alert = session.scalars(select(Alert)).one()
        assert (alert.type, alert.workspace_id) == (rules.SCHEDULER_STOPPED, None)
        heartbeat.beat(session, instance="sched-1", now=T0 + dt.timedelta(minutes=3))
        session.commit()
    assert scheduler_watch.check_once(engine, now=T0 + dt.timedelta(minutes=3)) is False
    with Session(engine) as session:
        heartbeat.beat(session, instance="sched-1", now=T0 + dt.timedelta(minutes=8))
        session.commit()
    assert scheduler_watch.check_once(engine, now=T0 + dt.timedelta(minutes=8)) is False
    with Session(engine) as session:
        assert session.scalars(select(Alert.state)).one() is AlertState.RESOLVED


def test_a_failed_look_is_logged_not_raised() -> None:
    broken = create_engine("sqlite:////nonexistent-dir/hub.db")
    assert scheduler_watch.check_once(broken, now=T0) is None


def test_the_lifespan_task_looks_until_the_app_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    looked = threading.Event()
    monkeypatch.setattr(scheduler_watch, "check_once", lambda engine, **_: looked.set())

    async def serve() -> bool:
        async with scheduler_watch.running(create_engine("sqlite://"), 3600) as task:
            assert task is not None
            seen = await asyncio.to_thread(looked.wait, 30)
        return seen and task.cancelled()

    assert asyncio.run(serve())


def test_no_task_when_switched_off() -> None:
    async def serve() -> object:
        async with scheduler_watch.running(create_engine("sqlite://"), 0) as task:
            return task

    assert asyncio.run(serve()) is None
