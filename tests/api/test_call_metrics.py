"""/metrics' provider figures: calls by outcome and the latency histogram from the call rollups,
counters of the day that only grow and that every process reads alike, while each scrape reads
recent minutes only; breaker states and open incidents."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from backend.api import call_metrics
from backend.api.call_metrics import ProviderFigures
from backend.platform import hub_figures
from models import (
    Alert,
    AlertPriority,
    AlertState,
    CallHour,
    CallMinute,
    ProviderCircuit,
    utcnow,
)
from tests import factories
from tests.api.test_metrics import sidecar
from tests.support.calls import add_calls, call

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _arrange_incidents_and_breakers(session: Session, workspace_id: int) -> None:
    session.add_all(
        [
            ProviderCircuit(key=f"stripe:ws{workspace_id}", provider="stripe",
                            workspace_id=workspace_id, state="open"),
            ProviderCircuit(key=f"slack:ws{workspace_id}", provider="slack",
                            workspace_id=workspace_id, state="half_open"),
            ProviderCircuit(key="stripe:platform", provider="stripe", state="closed"),
            Alert(workspace_id=workspace_id, type="provider_failing", message="m",
                  priority=AlertPriority.CRITICAL, entity_key="provider:stripe"),
            Alert(workspace_id=workspace_id, type="provider_failing", message="m",
                  priority=AlertPriority.CRITICAL, entity_key="provider:slack",
                  state=AlertState.ACKNOWLEDGED),
            Alert(workspace_id=workspace_id, type="job_dead", message="m",
                  state=AlertState.RESOLVED, entity_key="job:1"),
            Alert(type="scheduler_down", message="m", priority=AlertPriority.HIGH),
        ]
    )  # fmt: skip


def test_a_scrape_exports_calls_latency_breakers_and_open_incidents(engine: Engine) -> None:
    with Session(engine) as session:
        workspace_id = factories.workspace(session, slug="shop").id
        # Yesterday's: not in the counters, which start at midnight UTC.
        midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        add_calls(session, call(workspace_id, at=midnight - dt.timedelta(minutes=1)))
        session.commit()
    with sidecar(engine, metrics_cache_seconds=0) as client:
        with Session(engine) as session:
            add_calls(
                session,
                *(call(workspace_id, latency_ms=ms) for ms in (5, 30, 700)),
                call(workspace_id, outcome="unavailable", latency_ms=12_000),
                call(workspace_id, "slack", operation="POST /api/chat.postMessage"),
            )
            _arrange_incidents_and_breakers(session, workspace_id)
            session.commit()
        samples = _samples(client.get("/metrics").text)

    stripe = {"workspace": "shop", "provider": "stripe"}
    calls = "hub_provider_calls_total"
    assert _value(samples, calls, **stripe, outcome="ok") == 3
    assert _value(samples, calls, **stripe, outcome="unavailable") == 1
    assert _value(samples, calls, **stripe, outcome="timeout") == 0
    assert _value(samples, calls, workspace="shop", provider="slack", outcome="ok") == 1
    bucket = "hub_provider_call_latency_ms_bucket"
    cumulative = {"10.0": 1, "25.0": 1, "50.0": 2, "500.0": 2, "1000.0": 3, "10000.0": 3}
    cumulative |= {"30000.0": 4, "+Inf": 4}
    for le, count in cumulative.items():
        assert _value(samples, bucket, **stripe, le=le) == count, le
    assert _value(samples, "hub_provider_call_latency_ms_count", **stripe) == 4
    assert _value(samples, "hub_provider_call_latency_ms_sum", **stripe) == 5 + 30 + 700 + 12_000

    breaker = "hub_provider_breaker_state"
    assert _value(samples, breaker, **stripe) == 2
    assert _value(samples, breaker, workspace="shop", provider="slack") == 1
    assert _value(samples, breaker, workspace="(platform)", provider="stripe") == 0

    incidents = {k: v for k, v in samples.items() if k[0] == "hub_open_incidents"}
    failing = {"workspace": "shop", "rule": "provider_failing", "priority": "critical"}
    platform = {"workspace": "(platform)", "rule": "scheduler_down", "priority": "high"}
    assert incidents == {
        ("hub_open_incidents", frozenset((failing | {"state": "open"}).items())): 1,
        ("hub_open_incidents", frozenset((failing | {"state": "acknowledged"}).items())): 1,
        ("hub_open_incidents", frozenset((platform | {"state": "open"}).items())): 1,
    }


class _Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.at = start

    def __call__(self) -> dt.datetime:
        return self.at


def _ok_calls(figures: ProviderFigures) -> float | None:
    samples = {
        (s.name, s.labels.get("outcome")): s.value
        for family in figures.collect()
        for s in family.samples
    }
    return samples.get(("hub_provider_calls_total", "ok"))


def test_counters_count_the_day_only_grow_and_each_read_asks_for_recent_minutes_only(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, dt.datetime]] = []
    real = hub_figures.call_sums

    def spy(
        session: Session,
        rollup: type[CallMinute | CallHour],
        *,
        since: dt.datetime,
        until: dt.datetime | None = None,
    ) -> list[hub_figures.PeriodSums]:
        asked.append((rollup.__tablename__, since))
        return real(session, rollup, since=since, until=until)

    def minutes_since() -> dt.datetime:
        return next(at for table, at in reversed(asked) if table == "integration_call_minutes")

    def add(*minutes: int) -> None:
        with Session(engine) as session:
            add_calls(
                session, *(call(workspace_id, at=day + dt.timedelta(minutes=m)) for m in minutes)
            )
            session.commit()

    monkeypatch.setattr(hub_figures, "call_sums", spy)
    day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    clock = _Clock(day + dt.timedelta(minutes=10))
    figures = ProviderFigures(now=clock)
    with Session(engine) as session:
        workspace_id = factories.workspace(session).id
        session.commit()
    add(-1, 1)  # yesterday's call, and today's
    # Since midnight, though the process started at 00:10: every process says the same.
    figures.read(engine)
    assert (_ok_calls(figures), minutes_since()) == (1, day)

    clock.at = day + dt.timedelta(minutes=12)
    add(9)
    figures.read(engine)
    # The minutes more than GRACE old were kept at the last read: this one starts after them.
    assert (_ok_calls(figures), minutes_since()) == (2, day + dt.timedelta(minutes=5))
    assert clock.at - minutes_since() <= call_metrics.GRACE * 2
    restarted = ProviderFigures(now=clock)  # another worker, started just now
    restarted.read(engine)
    assert (_ok_calls(restarted), minutes_since()) == (2, day)

    # A worker started later in the day reads the hours that are over, then their minutes.
    add(90)
    clock.at = day + dt.timedelta(hours=2, minutes=10)
    figures.read(engine)
    asked.clear()
    later = ProviderFigures(now=clock)
    later.read(engine)
    assert _ok_calls(figures) == _ok_calls(later) == 3
    hours = dt.timedelta(hours=2)
    assert asked == [("integration_call_hours", day), ("integration_call_minutes", day + hours)]

    # The rollups of minutes that are over go (retention, a deleted workspace): a counter does
    # not go back.
    with Session(engine) as session:
        session.execute(delete(CallMinute))
        session.execute(delete(CallHour))
        session.commit()
    clock.at = day + dt.timedelta(hours=2, minutes=30)
    figures.read(engine)
    assert _ok_calls(figures) == 3

    # Midnight: back to 0 (the series stays), and the read starts at the new day.
    clock.at = day + dt.timedelta(days=1, minutes=1)
    figures.read(engine)
    assert (_ok_calls(figures), minutes_since()) == (0, day + dt.timedelta(days=1))
