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
  The first scrape of a process (and the first of a day) reads the day's hour rollups that are
  over (at most 24 a series) and the minutes since; each later one reads only the recent
  minutes (from ``settled_until`` on, a few minutes back) and adds the minutes that are over to
  totals kept here. A minute is over ``GRACE`` after it ends: the call
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
from backend.platform.hub_figures import Breaker, OpenIncidents, PeriodSums
from models import (
    BUCKET_COLUMNS,
    LATENCY_BUCKETS_MS,
    OUTCOME_COLUMNS,
    CallHour,
    CallMinute,
    utcnow,
)

GRACE = dt.timedelta(minutes=5)
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
# Each bucket's upper bound as Prometheus's own clients spell it ("10.0"), in the rollups'
# column order.
_LE = (*(str(float(b)) for b in LATENCY_BUCKETS_MS), "+Inf")

Key = tuple[str, str]  # (workspace, provider)


def minute_of(at: dt.datetime) -> dt.datetime:
    return at.replace(second=0, microsecond=0)


def hour_of(at: dt.datetime) -> dt.datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def day_of(at: dt.datetime) -> dt.datetime:
    """The counters' start: midnight UTC of ``at``'s day."""
    return at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class Totals:
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOME_COLUMNS, 0))
    buckets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKET_COLUMNS, 0))
    latency_ms_sum: int = 0

    def add(self, other: PeriodSums | Totals) -> None:
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

    def new_day(self, now: dt.datetime) -> dt.datetime | None:
        """The hour up to which the day's hour rollups are over and may be read at once (from
        midnight), when ``now`` starts a day for these counters (a process's first read, or
        midnight); None otherwise."""
        if day_of(now) == self.day:
            return None
        return max(day_of(now), hour_of(minute_of(now) - GRACE))

    def start_day(self, now: dt.datetime, hours: list[PeriodSums], until: dt.datetime) -> None:
        """A new day's totals: 0 for every series known (kept rather than dropped: a counter
        reset), plus the ``hours`` before ``until`` that are over."""
        self.day = day_of(now)
        self.settled = {key: Totals() for key in (*self.settled, *self._recent)}
        self._recent = {}
        for h in hours:
            self.settled.setdefault((h.workspace, h.provider), Totals()).add(h)
        self.settled_until = until

    def update(self, minutes: list[PeriodSums], now: dt.datetime) -> None:
        """Take a read of the minutes from ``settled_until`` on."""
        cut = max(self.settled_until, minute_of(now) - GRACE)
        recent: dict[Key, Totals] = {}
        for m in minutes:
            if m.start < self.settled_until:
                continue  # counted already
            into = self.settled if m.start < cut else recent
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
                until = self._counters.new_day(now)
                if until is not None:
                    hours = hub_figures.call_sums(session, CallHour, since=day_of(now), until=until)
                    self._counters.start_day(now, hours, until)
                minutes = hub_figures.call_sums(
                    session, CallMinute, since=self._counters.settled_until
                )
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
