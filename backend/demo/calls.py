"""A week of the demo live seller's calls to Stripe, so that a newcomer opening Health sees a
tile and charts with data at once: busy evenings, quiet nights, an afternoon two days ago when
Stripe answered 503 for a while, a few rate limits, and Stripe slow right now (degraded).

Written through the call log's own writer, so that the rollups the page reads are the real
ones. About three thousand calls: the seed stays well under a second.

Tested in tests/demo/test_seed.py.
"""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy.orm import Session

from backend.integrations.call_log import ProviderCall
from backend.platform import call_log_writer

OPERATIONS = (
    ("POST /v1/invoices", 0.35),
    ("POST /v1/invoices/{id}/finalize", 0.3),
    ("POST /v1/customers", 0.25),
    ("GET /v1/account", 0.1),
)
# Slow enough now to be degraded on the live-show thresholds (p95 over 1.5 s), not failing
# enough for the alert rules to raise anything.
SLOW_NOW = dt.timedelta(minutes=12)


def _call(
    rng: random.Random, workspace_id: int, at: dt.datetime, *, outage: bool, slow: bool
) -> ProviderCall:
    operation = rng.choices([o for o, _ in OPERATIONS], [w for _, w in OPERATIONS])[0]
    latency = int(rng.lognormvariate(5.4, 0.45))  # about 220 ms, a few over a second
    outcome, error = "ok", None
    status: int | None = 200
    if slow:
        latency = int(rng.uniform(1800, 4200)) if rng.random() < 0.4 else latency
    elif outage and rng.random() < 0.6:
        outcome, status, error = "unavailable", 503, "HTTP 503 Service Unavailable"
    elif rng.random() < 0.004:
        outcome, status, error = "rate_limited", 429, "HTTP 429 Too Many Requests"
    elif rng.random() < 0.003:
        outcome, status, error = "timeout", None, "no answer in time (ReadTimeout)"
        latency = 30_000
    return ProviderCall(
        provider="stripe",
        operation=operation,
        outcome=outcome,
        http_status=status,
        latency_ms=latency,
        error=error,
        at=at,
        workspace_id=workspace_id,
        integration_id=None,
        job_id=None,
    )


def week_of_stripe_calls(session: Session, workspace_id: int, now: dt.datetime) -> int:
    """Write the calls (in ``session``'s transaction); how many."""
    rng = random.Random(14)  # noqa: S311 - demo data, reproducible on purpose
    outage_start = (now - dt.timedelta(days=2)).replace(hour=15, minute=10, second=0)
    outage = (outage_start, outage_start + dt.timedelta(minutes=40))
    calls = []
    for hours_ago in range(7 * 24, 0, -1):
        hour = now - dt.timedelta(hours=hours_ago)
        # Evenings are when shows run and invoices go out.
        per_hour = 45 if 18 <= hour.hour <= 22 else (12 if 8 <= hour.hour < 18 else 3)
        for _ in range(rng.randint(per_hour // 2, per_hour)):
            at = hour + dt.timedelta(seconds=rng.randrange(3600))
            calls.append(
                _call(rng, workspace_id, at, outage=outage[0] <= at < outage[1], slow=False)
            )
    for second in range(0, int(SLOW_NOW.total_seconds()), 12):
        at = now - SLOW_NOW + dt.timedelta(seconds=second)
        calls.append(_call(rng, workspace_id, at, outage=False, slow=True))
    return call_log_writer.write(session, sorted(calls, key=lambda c: c.at))
