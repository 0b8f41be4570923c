"""/metrics' figures about the providers: calls by outcome and their latency histogram per
workspace and provider, each account's breaker, and the open incidents.

- ``hub_provider_calls_total{workspace,provider,outcome}`` and the histogram
  ``hub_provider_call_latency_ms{workspace,provider}`` (``_bucket{le}``, ``_sum``, ``_count``,
  the rollups' buckets, in ms) are counters **since 00:00 UTC today**: they only grow during
  the day and go back to 0 at midnight UTC, which Prometheus's ``rate`` and ``increase`` take
  as a counter reset. A fixed start shared by every process, not each process's own start: the
  sidecar runs several workers (and may run on several machines), a scrape reaches any one of
  them, and each must say the same figure, a worker restarted an hour ago included. A sum over
  a sliding window instead would fall as old minutes leave it, which Prometheus reads as resets
  (a burst of phantom increases).
  The first scrape of a process reads the day's rollups (at most 1,440 minutes); each later one
  reads only the recent minutes (from ``settled_until`` on, a few minutes back) and adds the
  minutes that are over to totals kept here. A minute is over ``GRACE`` after it ends: the call
  log's writers add a call to its minute within a second or so, but a batch that waited out a
  database outage arrives late; one more than ``GRACE`` late is on the Health page but not in
  these counters. Every process reads the same database: aggregate instances with ``max``,
  never ``sum``.
- ``hub_provider_breaker_state{workspace,provider}``: 0 closed, 1 half-open, 2 open.
- ``hub_open_incidents{workspace,rule,priority,state}``: incidents not resolved.

The platform's own figures (its Stripe account, its incidents) carry ``workspace="(platform)"``.

Tested in tests/api/test_call_metrics.py.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import Engine

from backend.db import session_scope
from backend.platform import hub_figures
from backend.platform.hub_figures import Breaker, MinuteSums, OpenIncidents
from models import BUCKET_COLUMNS, LATENCY_BUCKETS_MS, OUTCOME_COLUMNS, utcnow

GRACE = dt.timedelta(minutes=5)
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
# Each bucket's upper bound as Prometheus's own clients spell it ("10.0"), in the rollups'
# column order.
_LE = (*(str(float(b)) for b in LATENCY_BUCKETS_MS), "+Inf")

Key = tuple[str, str]  # (workspace, provider)


def minute_of(at: dt.datetime) -> dt.datetime:
    return at.replace(second=0, microsecond=0)


def day_of(at: dt.datetime) -> dt.datetime:
    """The counters' start: midnight UTC of ``at``'s day."""
    return at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class Totals:
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOME_COLUMNS, 0))
    buckets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKET_COLUMNS, 0))
    latency_ms_sum: int = 0

    def add(self, other: MinuteSums | Totals) -> None:
        for name, n in other.outcomes.items():
            self.outcomes[name] += n
        for name, n in other.buckets.items():
            self.buckets[name] += n
        self.latency_ms_sum += other.latency_ms_sum


class CallCounters:
    """Today's totals: the minutes that are over, kept, plus the recent ones as last read
    (which may still grow)."""

    def __init__(self) -> None:
        self.day: dt.datetime | None = None
        self.settled: dict[Key, Totals] = {}
        self.settled_until = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._recent: dict[Key, Totals] = {}

    def since(self, now: dt.datetime) -> dt.datetime:
        """The first minute the next read needs: the day's first on a process's first read
        and on a new day, else the first not yet over."""
        return self.settled_until if day_of(now) == self.day else day_of(now)

    def update(self, minutes: list[MinuteSums], now: dt.datetime) -> None:
        """Take a read of the minutes from ``since(now)`` on."""
        if day_of(now) != self.day:
            # Midnight: every series goes back to 0 (kept, at 0, rather than dropped).
            self.day = self.settled_until = day_of(now)
            self.settled = {key: Totals() for key in (*self.settled, *self._recent)}
        cut = max(self.settled_until, minute_of(now) - GRACE)
        recent: dict[Key, Totals] = {}
        for m in minutes:
            if m.minute < self.settled_until:
                continue  # counted already
            into = self.settled if m.minute < cut else recent
            into.setdefault((m.workspace, m.provider), Totals()).add(m)
        self.settled_until = cut
        self._recent = recent

    def totals(self) -> dict[Key, Totals]:
        merged: dict[Key, Totals] = {}
        for part in (self.settled, self._recent):
            for key, sums in part.items():
                merged.setdefault(key, Totals()).add(sums)
        return merged


@dataclass(frozen=True)
class _Snapshot:
    calls: dict[Key, Totals] = field(default_factory=dict)
    breakers: list[Breaker] = field(default_factory=list)
    incidents: list[OpenIncidents] = field(default_factory=list)


class ProviderFigures:
    """A collector of the last read: ``read`` (under the scrape's cache) refreshes it."""

    def __init__(self, now: Callable[[], dt.datetime] = utcnow) -> None:
        self._now = now
        self._counters = CallCounters()
        self._lock = threading.Lock()
        self._snapshot = _Snapshot()

    def read(self, engine: Engine) -> None:
        """One short read-only transaction; SQLAlchemy's errors propagate (the caller keeps
        the last figures and says the database is down)."""
        with self._lock:
            now = self._now()
            with session_scope(engine) as session:
                minutes = hub_figures.call_minutes(session, since=self._counters.since(now))
                breakers = hub_figures.breakers(session)
                incidents = hub_figures.open_incidents(session)
            self._counters.update(minutes, now)
            self._snapshot = _Snapshot(self._counters.totals(), breakers, incidents)

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        calls = CounterMetricFamily(
            "hub_provider_calls",
            "Provider calls by outcome since this sidecar started (from the call rollups).",
            labels=["workspace", "provider", "outcome"],
        )
        latency = HistogramMetricFamily(
            "hub_provider_call_latency_ms",
            "Latency of provider calls in milliseconds since this sidecar started.",
            labels=["workspace", "provider"],
        )
        for (workspace, provider), totals in sorted(snapshot.calls.items()):
            for outcome in OUTCOME_COLUMNS:
                calls.add_metric([workspace, provider, outcome], totals.outcomes[outcome])
            cumulative, buckets = 0, []
            for le, column in zip(_LE, BUCKET_COLUMNS, strict=True):
                cumulative += totals.buckets[column]
                buckets.append((le, float(cumulative)))
            latency.add_metric([workspace, provider], buckets, float(totals.latency_ms_sum))
        breakers = GaugeMetricFamily(
            "hub_provider_breaker_state",
            "Circuit breaker of each connected account: 0 closed, 1 half-open, 2 open.",
            labels=["workspace", "provider"],
        )
        for b in snapshot.breakers:
            # A state this exporter does not know is shown as open: calls are not flowing.
            breakers.add_metric([b.workspace, b.provider], BREAKER_VALUES.get(b.state, 2))
        incidents = GaugeMetricFamily(
            "hub_open_incidents",
            "Incidents not resolved, by rule, priority and state.",
            labels=["workspace", "rule", "priority", "state"],
        )
        for i in snapshot.incidents:
            incidents.add_metric([i.workspace, i.rule, i.priority, i.state], i.count)
        yield from (calls, latency, breakers, incidents)
