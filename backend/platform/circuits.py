"""Per-provider circuit breakers and rate limits, kept in the database so that every worker
process sees the same state (and the console can show it).

A circuit opens after a run of consecutive failures, or when more than half of the calls in a
window fail; while open, that provider's jobs stay queued instead of burning attempts. After the
open period one probe job is let through (half-open): success closes the circuit, failure
opens it again for longer.

Tested in tests/platform/test_outbox.py, tests/health/test_service.py and
tests/jobs/test_reliability.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.db import conflict_insert
from models import ProviderCircuit, utcnow


@dataclass(frozen=True)
class CircuitPolicy:
    consecutive_failures: int = 5
    window: dt.timedelta = dt.timedelta(minutes=1)
    window_min_calls: int = 10
    failure_rate: float = 0.5
    open_for: dt.timedelta = dt.timedelta(seconds=30)
    max_open_for: dt.timedelta = dt.timedelta(minutes=10)
    # How long a half-open probe may take before another worker may probe again.
    probe_timeout: dt.timedelta = dt.timedelta(seconds=60)


POLICY = CircuitPolicy()
# What ``record`` returns when a success closes a circuit that was not closed.
RECLOSED = "reclosed"
# Requests per second each provider accepts (Stripe's test mode: 25/s). None: unlimited.
RATE_LIMITS: dict[str, float] = {
    "stripe": 25.0,
    "sendgrid": 50.0,
    "slack": 1.0,
    "messenger": 40.0,
    "google": 10.0,
}


# The most requests the product sends a provider at once after a quiet spell: half a second's
# worth. A provider's own bucket (Stripe's holds about a second's worth) starts when requests
# arrive, and they arrive a little irregularly (connections, scheduling): a burst of the full
# second, sent on time, can reach it as more than it allows. The rate itself is unchanged.
BURST_SECONDS = 0.5


def set_policy(policy: CircuitPolicy) -> None:
    """Tests and deployments tune the breaker here."""
    global POLICY
    POLICY = policy


@dataclass(frozen=True)
class Gate:
    blocked: list[str]
    probes: list[str]


def _row(session: Session, provider: str, now: dt.datetime) -> ProviderCircuit:
    session.execute(
        conflict_insert(session, ProviderCircuit)
        .values(
            provider=provider,
            state="closed",
            consecutive_failures=0,
            window_started_at=now,
            window_calls=0,
            window_failures=0,
            open_count=0,
            tokens=RATE_LIMITS.get(provider, 1.0),
            tokens_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["provider"])
    )
    stmt = select(ProviderCircuit).where(ProviderCircuit.provider == provider)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one()


def claim_gate(session: Session, *, now: dt.datetime | None = None, probe: bool = True) -> Gate:
    """Which providers' jobs must not be claimed now, and which get one probe job. A caller
    that claims no provider jobs passes ``probe=False``: it must not win a probe it won't send."""
    now = now or utcnow()
    blocked: list[str] = []
    probes: list[str] = []
    rows = session.execute(
        select(ProviderCircuit.provider, ProviderCircuit.state, ProviderCircuit.opened_until).where(
            ProviderCircuit.state != "closed"
        )
    ).all()
    for provider, state, until in rows:
        blocked.append(provider)
        if probe and until is not None and until <= now:
            # Exactly one worker wins the move to half-open and sends the probe.
            moved = session.execute(
                update(ProviderCircuit)
                .where(
                    ProviderCircuit.provider == provider,
                    ProviderCircuit.state == state,
                    ProviderCircuit.opened_until == until,
                )
                .values(state="half_open", opened_until=now + POLICY.probe_timeout, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if getattr(moved, "rowcount", 0):
                probes.append(provider)
    return Gate(blocked, probes)


def record(
    session: Session,
    *,
    provider: str,
    ok: bool,
    error: str | None = None,
    now: dt.datetime | None = None,
) -> str:
    """Count one call's outcome; returns the circuit's state afterwards, or ``RECLOSED`` when a
    success closed an open or half-open circuit (its waiting jobs are due: see the runner)."""
    now = now or utcnow()
    row = _row(session, provider, now)
    if now - row.window_started_at > POLICY.window:
        row.window_started_at, row.window_calls, row.window_failures = now, 0, 0
    row.window_calls += 1
    row.updated_at = now
    if ok:
        row.consecutive_failures = 0
        if row.state != "closed":
            row.state, row.opened_until, row.open_count = "closed", None, 0
            return RECLOSED
        return row.state
    row.window_failures += 1
    row.consecutive_failures += 1
    row.last_error = (error or "")[:500]
    failing = (
        row.state == "half_open"
        or row.consecutive_failures >= POLICY.consecutive_failures
        or (
            row.window_calls >= POLICY.window_min_calls
            and row.window_failures / row.window_calls > POLICY.failure_rate
        )
    )
    if failing and row.state != "open":
        row.open_count += 1
        seconds = min(
            POLICY.open_for.total_seconds() * 2 ** (row.open_count - 1),
            POLICY.max_open_for.total_seconds(),
        )
        row.state, row.opened_until = "open", now + dt.timedelta(seconds=seconds)
    return row.state


def open_until(session: Session, *, provider: str) -> dt.datetime | None:
    """When an open (or half-open) breaker lets its next probe through; None when closed."""
    row = session.get(ProviderCircuit, provider)
    if row is None or row.state == "closed":
        return None
    return row.opened_until


def probe_now(session: Session, *, provider: str, now: dt.datetime | None = None) -> None:
    """Let an open breaker send its probe at the next claim (an operator asked to retry)."""
    now = now or utcnow()
    session.execute(
        update(ProviderCircuit)
        # A half-open breaker has its probe on the way already.
        .where(ProviderCircuit.provider == provider, ProviderCircuit.state == "open")
        .values(opened_until=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def _locked_bucket(
    session: Session, provider: str, rate: float, capacity: float, now: dt.datetime | None
) -> tuple[ProviderCircuit, dt.datetime, float]:
    """The provider's row, locked; the time; the tokens it holds at that time.

    The clock is read once the row is locked: a time read before waiting for another worker's
    update would be earlier than the bucket's own and count that worker's refill twice (more
    requests than the provider allows when workers contend)."""
    row = _row(session, provider, now or utcnow())
    now = max(now or utcnow(), row.tokens_at)
    elapsed = (now - row.tokens_at).total_seconds()
    return row, now, min(capacity, row.tokens + elapsed * rate)


def reserve_token(session: Session, *, provider: str, now: dt.datetime | None = None) -> float:
    """Reserve the provider's next request: the seconds to wait before sending it (0.0: now).

    The token is taken even when it is not there yet: the bucket goes into debt and the next
    caller is given the slot after this one. Workers waiting for the same provider queue up in
    order, one short transaction per request, instead of all waking
    when a token comes due and asking again (which, with many workers, is most of the
    bucket's traffic and delays the requests themselves). The bucket holds ``BURST_SECONDS``
    of requests: see there. This is what the product's provider calls wait on
    (``providers.throttle``)."""
    rate = RATE_LIMITS.get(provider)
    if rate is None:
        return 0.0
    capacity = max(1.0, rate * BURST_SECONDS)
    row, now, tokens = _locked_bucket(session, provider, rate, capacity, now)
    row.tokens, row.tokens_at = tokens - 1.0, now
    return 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate


@dataclass(frozen=True)
class CircuitView:
    provider: str
    state: str
    consecutive_failures: int
    window_calls: int
    window_failures: int
    opened_until: dt.datetime | None
    last_error: str | None
    rate_limit: float | None


def states(session: Session) -> list[CircuitView]:
    rows = session.scalars(select(ProviderCircuit).order_by(ProviderCircuit.provider)).all()
    return [
        CircuitView(
            r.provider,
            r.state,
            r.consecutive_failures,
            r.window_calls,
            r.window_failures,
            r.opened_until,
            r.last_error,
            RATE_LIMITS.get(r.provider),
        )
        for r in rows
    ]
