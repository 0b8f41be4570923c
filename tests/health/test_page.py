"""The Health page's windows and their buckets, and the page read for one window: the charts
are of the chosen provider when it has a tile, else of the most troubled one."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from backend.health import page
from models import Integration, IntegrationStatus
from tests import factories
from tests.support.calls import add_calls, call

NOW = dt.datetime(2027, 3, 1, 12, 7, 30, tzinfo=dt.UTC)


def test_each_window_is_cut_into_a_chart_of_at_most_a_hundred_points() -> None:
    for key, count in (("15m", 15), ("24h", 96), ("7d", 84)):
        window = page.window_of(key)
        assert window.count == count
        start = window.start(NOW)
        # The last bucket holds now; the buckets line up with the clock.
        assert start + window.step * (count - 1) <= NOW < start + window.step * count
        assert int(start.timestamp()) % int(window.step.total_seconds()) == 0
    assert page.window_of("nonsense") == page.WINDOWS[page.DEFAULT_WINDOW]


def test_the_charts_are_of_the_chosen_provider_or_the_most_troubled(session: Session) -> None:
    ws = factories.workspace(session)
    for provider in ("sendgrid", "stripe"):
        session.add(
            Integration(
                workspace_id=ws.id,
                provider=provider,
                display_name=provider.title(),
                status=IntegrationStatus.ACTIVE,
            )
        )
    at = NOW - dt.timedelta(minutes=2)
    add_calls(
        session,
        *(call(ws.id, "stripe", outcome="unavailable", at=at) for _ in range(6)),
        *(call(ws.id, "sendgrid", at=at) for _ in range(4)),
    )
    found = page.read(session, workspace_id=ws.id, window="15m", now=NOW)
    assert [t.provider for t in found.tiles] == ["stripe", "sendgrid"]
    assert found.provider == "stripe" and len(found.calls) == 15
    assert sum(p.rollup.calls for p in found.calls) == 6
    chosen = page.read(session, workspace_id=ws.id, window="15m", provider="sendgrid", now=NOW)
    assert chosen.provider == "sendgrid"
    assert sum(p.rollup.calls for p in chosen.calls) == 4
    other = page.read(session, workspace_id=ws.id, provider="not-a-tile", now=NOW)
    assert other.provider == "stripe"
