"""The Health page's tiles and charts as the page holds them (console/state/health_view.py and
console/state/health.py): a troubled tile says what waits on it with links, the charts are
Plotly figures with data, the window switch and the failures dialog read the workspace's own."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy.orm import Session

import backend.jobs  # noqa: F401  (declares the job kinds the outbox rows name)
from backend.health import page as page_figures
from backend.platform import circuits
from backend.platform.actors import Actor
from backend.platform.errors import ServiceError
from console.state import health
from console.state.base import Outcome
from console.state.health import HealthState
from console.state.health_view import ago, health_view, jobs_href
from models import Integration, IntegrationStatus, Role, Show, ShowStatus, utcnow
from tests import factories
from tests.support.calls import add_calls, call
from tests.support.matrix_console import call as call_handler
from tests.support.shows import waiting_invoice_jobs


def _as(monkeypatch: pytest.MonkeyPatch, session: Session, actor: Actor) -> None:
    async def run(state: object, work: Any, **_: object) -> Outcome[object]:
        try:
            with session.begin_nested():
                return Outcome(value=work(session, actor))
        except ServiceError as exc:
            return Outcome(error=exc)

    monkeypatch.setattr(health, "change", run)
    monkeypatch.setattr(health, "read", run)


def _stripe_down_with_invoices_waiting(session: Session) -> tuple[int, int]:
    """A workspace whose Stripe breaker is open, with 3 invoices of a show waiting and a day
    of calls; (workspace id, show id)."""
    ws = factories.workspace(session)
    session.add(
        Integration(
            workspace_id=ws.id,
            provider="stripe",
            display_name="Stripe",
            status=IntegrationStatus.ACTIVE,
        )
    )
    show = Show(workspace_id=ws.id, title="Spring Drop", status=ShowStatus.ENDED, currency="usd")
    session.add(show)
    session.flush()
    waiting_invoice_jobs(session, show, 3)
    now = utcnow()
    add_calls(
        session,
        *(call(ws.id, "stripe", at=now - dt.timedelta(hours=h), latency_ms=90) for h in range(20)),
        *(call(ws.id, "stripe", outcome="unavailable", at=now) for _ in range(6)),
    )
    for _ in range(circuits.POLICY.consecutive_failures):
        circuits.record(session, provider="stripe", workspace_id=ws.id, ok=False, error="down")
    session.flush()
    return ws.id, show.id


def test_a_tile_in_trouble_says_what_waits_with_links_and_the_charts_have_data(
    session: Session,
) -> None:
    ws_id, show_id = _stripe_down_with_invoices_waiting(session)
    view = health_view(page_figures.read(session, workspace_id=ws_id))
    [tile] = view.tiles
    assert tile.status == "major outage" and tile.color == "red"
    assert [(w.text, w.href) for w in tile.waiting] == [
        ("3 invoices of show Spring Drop", f"/shows/{show_id}")
    ]
    assert tile.breaker.startswith("open: calls are held; next probe")
    assert tile.jobs_href == "/jobs?provider=stripe"
    assert view.chart_provider == "stripe" and view.has_calls
    bars = view.outcomes["data"]
    assert sum(sum(t["y"]) for t in bars) == 26
    assert {t["name"] for t in bars} >= {"ok", "unavailable"}
    assert view.outcomes["layout"]["barmode"] == "stack"
    assert [t["name"] for t in view.latency["data"]] == ["p50", "p95"]
    assert view.has_queue and view.queue["data"][0]["y"] == [3]
    assert "queued" in view.oldest_job


def test_the_window_switch_and_the_failures_dialog(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws_id, _ = _stripe_down_with_invoices_waiting(session)
    other = factories.workspace(session, slug="other")
    add_calls(session, call(other.id, "stripe", outcome="rejected", error="theirs"))
    _as(monkeypatch, session, Actor(operator_id=1, workspace_id=ws_id, role=Role.VIEWER))

    called = call_handler(HealthState, "set_window", token="t", path="/health", args=("15m",))
    assert called.error is None and called.state.window == "15m"
    # 15 one-minute buckets; only the last one's failures are in it.
    assert len(called.state.outcomes_chart["data"][0]["x"]) == 15
    called = call_handler(HealthState, "set_window", token="t", path="/health", args=("1y",))
    assert called.state.window == page_figures.DEFAULT_WINDOW

    called = call_handler(HealthState, "show_failures", token="t", path="/health", args=("stripe",))
    assert called.error is None and called.state.failures_open
    assert [(f["error"], f["count"]) for f in called.state.failures] == [
        ("HTTP 503 Service Unavailable", "6")
    ]
    assert called.state.failures_jobs_href == jobs_href("stripe")


def test_times_are_said_relative_to_now() -> None:
    now = utcnow()
    assert ago(now - dt.timedelta(seconds=30), now) == "30 seconds ago"
    assert ago(now + dt.timedelta(minutes=5), now) == "in 5 minutes"
    assert ago(now - dt.timedelta(hours=3), now) == "3 hours ago"
    assert ago(None, now) == ""
