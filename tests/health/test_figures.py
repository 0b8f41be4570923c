"""Call figures from the rollups: percentiles interpolated within a histogram bucket, a
provider's window summed, and the per-bucket series the charts draw."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from backend.health import figures
from backend.platform.call_log_writer import bucket_of
from models import BUCKET_COLUMNS, LATENCY_BUCKETS_MS
from tests import factories
from tests.support.calls import add_calls, call

T0 = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)


def _histogram(latencies: list[int]) -> list[int]:
    counts = dict.fromkeys(BUCKET_COLUMNS, 0)
    for ms in latencies:
        counts[bucket_of(ms)] += 1
    return [counts[c] for c in BUCKET_COLUMNS]


def test_a_percentile_is_interpolated_within_its_bucket() -> None:
    # 100 calls, all in the (100, 250] bucket: the p50 is halfway through it.
    histogram = _histogram([200] * 100)
    low, high = 100, 250
    assert figures.percentile(histogram, 0.5) == pytest.approx(low + (high - low) * 0.5)
    assert figures.percentile(histogram, 0.95) == pytest.approx(low + (high - low) * 0.95)


def test_a_percentile_lands_in_the_bucket_its_rank_falls_in() -> None:
    # 90 fast calls (≤ 10 ms) and 10 slow ones (2.5-5 s): the p50 is fast, the p95 slow.
    histogram = _histogram([5] * 90 + [3000] * 10)
    p50 = figures.percentile(histogram, 0.5)
    p95 = figures.percentile(histogram, 0.95)
    p99 = figures.percentile(histogram, 0.99)
    assert p50 is not None and p95 is not None and p99 is not None
    assert 0 < p50 <= LATENCY_BUCKETS_MS[0]
    assert 2500 < p95 < p99 <= 5000
    # Half of the slow bucket's calls lie below the p95: halfway through it.
    assert p95 == pytest.approx(2500 + (5000 - 2500) * (95 - 90) / 10)


def test_a_percentile_in_the_open_last_bucket_is_its_lower_bound() -> None:
    histogram = _histogram([60_000] * 3)
    assert figures.percentile(histogram, 0.99) == LATENCY_BUCKETS_MS[-1]


def test_no_calls_have_no_percentile_and_no_success_rate() -> None:
    assert figures.percentile(_histogram([]), 0.5) is None
    empty = figures.Rollup()
    assert empty.calls == 0 and empty.success_rate is None and empty.failure_rate == 0.0


def test_a_window_is_summed_per_provider_for_the_workspace_only(session: Session) -> None:
    ws, other = factories.workspace(session), factories.workspace(session, slug="other")
    at = T0 - dt.timedelta(minutes=5)
    add_calls(
        session,
        *(call(ws.id, "stripe", at=at, latency_ms=40) for _ in range(8)),
        call(ws.id, "stripe", outcome="rate_limited", at=at, http_status=429),
        call(ws.id, "stripe", outcome="timeout", at=at, operation="GET /v1/account"),
        call(ws.id, "sendgrid", at=at),
        # Outside the window, and another workspace's.
        call(ws.id, "stripe", at=T0 - dt.timedelta(hours=2)),
        *(call(other.id, "stripe", outcome="unavailable", at=at) for _ in range(5)),
    )
    found = figures.by_provider(session, workspace_id=ws.id, since=T0 - dt.timedelta(hours=1))
    stripe = found["stripe"]
    assert stripe.calls == 10 and stripe.failures == 2 and stripe.rate_limited == 1
    assert stripe.success_rate == pytest.approx(0.8)
    assert stripe.latency_ms_sum == 8 * 40 + 2 * 120
    assert sum(stripe.histogram) == 10
    assert found["sendgrid"].calls == 1
    assert set(found) == {"stripe", "sendgrid"}


def test_the_series_has_every_bucket_and_sums_the_minutes_in_each(session: Session) -> None:
    ws = factories.workspace(session)
    start, step = T0, dt.timedelta(minutes=15)
    add_calls(
        session,
        call(ws.id, "stripe", at=start + dt.timedelta(minutes=1)),
        call(ws.id, "stripe", at=start + dt.timedelta(minutes=14, seconds=59)),
        call(ws.id, "stripe", outcome="unavailable", at=start + dt.timedelta(minutes=31)),
        call(ws.id, "stripe", at=start - dt.timedelta(minutes=1)),  # before the first bucket
        call(ws.id, "sendgrid", at=start + dt.timedelta(minutes=2)),  # another provider
    )
    points = figures.series(
        session, workspace_id=ws.id, provider="stripe", start=start, step=step, count=4
    )
    assert [p.at for p in points] == [start + step * i for i in range(4)]
    assert [p.rollup.calls for p in points] == [2, 0, 1, 0]
    assert [p.rollup.failures for p in points] == [0, 0, 1, 0]


def test_the_busiest_minute_is_found_per_provider(session: Session) -> None:
    ws = factories.workspace(session)
    add_calls(
        session,
        *(call(ws.id, "stripe", at=T0 - dt.timedelta(minutes=2)) for _ in range(3)),
        *(
            call(ws.id, "stripe", at=T0 - dt.timedelta(minutes=1), operation=f"op{n}")
            for n in range(7)
        ),
    )
    peaks = figures.peak_minute(
        session, workspace_id=ws.id, since=T0 - dt.timedelta(minutes=15), providers=["stripe"]
    )
    assert peaks == {"stripe": 7}


def test_a_week_is_read_from_the_hour_rollups(session: Session) -> None:
    ws = factories.workspace(session)
    start, step = T0, dt.timedelta(hours=2)
    add_calls(
        session,
        call(ws.id, "stripe", at=start + dt.timedelta(minutes=5)),
        call(ws.id, "stripe", at=start + dt.timedelta(minutes=119)),
        call(ws.id, "stripe", outcome="timeout", at=start + dt.timedelta(hours=5)),
    )
    points = figures.series(
        session, workspace_id=ws.id, provider="stripe", start=start, step=step, count=3, hourly=True
    )
    assert [p.rollup.calls for p in points] == [2, 0, 1]
    week = figures.by_provider(
        session, workspace_id=ws.id, since=start + dt.timedelta(minutes=30), hourly=True
    )
    # From the hour the window starts in: whole hours.
    assert week["stripe"].calls == 3
