"""Circuit breakers and rate limits per connected account, kept in the database so that every
worker process sees the same state (and the console can show it).

A provider limits and fails per account, not per product: Stripe's rate limit is an account's,
SendGrid's an API key's, Slack's a token's, Messenger's a Page's. So each workspace's account at
a provider has its own breaker and bucket (``key_for``: the workspace and the provider, which
name exactly one integration, and so one account, key, token or Page), and one tenant's outage
or thousand-invoice run never holds or slows another's. Only the platform's own account (the
Stripe account that sells plans) is one breaker for the whole provider: ``key_for(provider,
None)``.

A circuit opens after a run of consecutive failures, or when more than half of the calls in a
window fail; while open, that provider's jobs stay queued instead of burning attempts. After the
open period one probe job is let through (half-open): success closes the circuit, failure
opens it again for longer.

Tested in tests/platform/test_circuits.py (one account's state never another's),
tests/platform/test_outbox.py, tests/health/test_service.py and tests/jobs/test_reliability.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.db import conflict_insert
from models import ProviderCircuit, utcnow


@dataclass(frozen=True)
class CircuitPolicy:
    consecutive_failures: int = 5
    window: dt.timedelta = dt.timedelta(minutes=1)
    window_min_calls: int = 10
    failure_rate: float = 0.5
    # How long the breaker stays open, doubled by each failed probe up to ``max_open_for``.
    # None: the settings' (HUB_BREAKER_OPEN_SECONDS, 30 s; HUB_BREAKER_MAX_OPEN_SECONDS, 10 min),
    # read when a breaker opens, so that a process started with them uses them.
    open_for: dt.timedelta | None = None
    max_open_for: dt.timedelta | None = None
    # How long a half-open probe may take before another worker may probe again.
    probe_timeout: dt.timedelta = dt.timedelta(seconds=60)

    def open_period(self, open_count: int) -> dt.timedelta:
        """How long the breaker stays open when it opens for the ``open_count``-th time in a
        row (1: the first)."""
        settings = get_settings()
        first = self.open_for or dt.timedelta(seconds=settings.breaker_open_seconds)
        longest = self.max_open_for or dt.timedelta(seconds=settings.breaker_max_open_seconds)
        # The exponent is capped: a breaker open for days has opened hundreds of times.
        seconds = first.total_seconds() * 2.0 ** min(max(0, open_count - 1), 64)
        return dt.timedelta(seconds=min(seconds, longest.total_seconds()))


POLICY = CircuitPolicy()
# What ``record`` returns when a success closes a circuit that was not closed.
RECLOSED = "reclosed"
# Requests per second each provider accepts from one account (Stripe's test mode: 25/s per
# account). None: unlimited.
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


PLATFORM = "platform"


def key_for(provider: str, workspace_id: int | None) -> str:
    """The breaker and bucket a call as this workspace's account at ``provider`` goes through;
    ``workspace_id`` None: the platform's own account.

    The workspace and the provider rather than the integration's id: they name one integration
    (one per provider per workspace), are known wherever a job is queued without a query, and
    stay the same when the account is disconnected and connected again (a job queued before
    still paces on the same bucket)."""
    owner = PLATFORM if workspace_id is None else f"ws{workspace_id}"
    return f"{provider}:{owner}"


@dataclass(frozen=True)
class Gate:
    """Circuit keys whose jobs may not be claimed now, and those that get one probe job."""

    blocked: list[str]
    probes: list[str]


def _row(
    session: Session, provider: str, workspace_id: int | None, now: dt.datetime
) -> ProviderCircuit:
    key = key_for(provider, workspace_id)
    session.execute(
        conflict_insert(session, ProviderCircuit)
        .values(
            key=key,
            provider=provider,
            workspace_id=workspace_id,
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
        .on_conflict_do_nothing(index_elements=["key"])
    )
    stmt = select(ProviderCircuit).where(ProviderCircuit.key == key)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one()


def claim_gate(session: Session, *, now: dt.datetime | None = None, probe: bool = True) -> Gate:
    """Which circuits' jobs must not be claimed now, and which get one probe job. A caller
    that claims no provider jobs passes ``probe=False``: it must not win a probe it won't send."""
    now = now or utcnow()
    blocked: list[str] = []
    probes: list[str] = []
    rows = session.execute(
        select(ProviderCircuit.key, ProviderCircuit.state, ProviderCircuit.opened_until).where(
            ProviderCircuit.state != "closed"
        )
    ).all()
    for key, state, until in rows:
        blocked.append(key)
        if probe and until is not None and until <= now:
            # Exactly one worker wins the move to half-open and sends the probe.
            moved = session.execute(
                update(ProviderCircuit)
                .where(
                    ProviderCircuit.key == key,
                    ProviderCircuit.state == state,
                    ProviderCircuit.opened_until == until,
                )
                .values(state="half_open", opened_until=now + POLICY.probe_timeout, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if getattr(moved, "rowcount", 0):
                probes.append(key)
    return Gate(blocked, probes)


def record(
    session: Session,
    *,
    provider: str,
    workspace_id: int | None,
    ok: bool,
    error: str | None = None,
    now: dt.datetime | None = None,
) -> str:
    """Count one call's outcome as the workspace's account (None: the platform's); returns the
    circuit's state afterwards, or ``RECLOSED`` when a success closed an open or half-open
    circuit (its waiting jobs are due: see the runner)."""
    now = now or utcnow()
    row = _row(session, provider, workspace_id, now)
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
        row.state, row.opened_until = "open", now + POLICY.open_period(row.open_count)
    return row.state


def open_until(session: Session, *, provider: str, workspace_id: int | None) -> dt.datetime | None:
    """When an open (or half-open) breaker lets its next probe through; None when closed."""
    row = session.get(ProviderCircuit, key_for(provider, workspace_id))
    if row is None or row.state == "closed":
        return None
    return row.opened_until


def probe_now(
    session: Session, *, provider: str, workspace_id: int | None, now: dt.datetime | None = None
) -> None:
    """Let an open breaker send its probe at the next claim (an operator asked to retry)."""
    now = now or utcnow()
    key = key_for(provider, workspace_id)
    session.execute(
        update(ProviderCircuit)
        # A half-open breaker has its probe on the way already.
        .where(ProviderCircuit.key == key, ProviderCircuit.state == "open")
        .values(opened_until=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def _locked_bucket(
    session: Session,
    provider: str,
    workspace_id: int | None,
    rate: float,
    capacity: float,
    now: dt.datetime | None,
) -> tuple[ProviderCircuit, dt.datetime, float]:
    """The account's row, locked; the time; the tokens it holds at that time.

    The clock is read once the row is locked: a time read before waiting for another worker's
    update would be earlier than the bucket's own and count that worker's refill twice (more
    requests than the provider allows when workers contend)."""
    row = _row(session, provider, workspace_id, now or utcnow())
    now = max(now or utcnow(), row.tokens_at)
    elapsed = (now - row.tokens_at).total_seconds()
    return row, now, min(capacity, row.tokens + elapsed * rate)


def reserve_token(
    session: Session, *, provider: str, workspace_id: int | None, now: dt.datetime | None = None
) -> float:
    """Reserve the account's next request to the provider: the seconds to wait before sending
    it (0.0: now). Each account has its own bucket, at the provider's per-account rate: a
    workspace in debt never makes another wait.

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
    row, now, tokens = _locked_bucket(session, provider, workspace_id, rate, capacity, now)
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


def states(session: Session, *, workspace_id: int | None) -> list[CircuitView]:
    """The workspace's own circuits, one per provider it has called (None: the platform's
    own). Never another workspace's: their states and last errors are theirs."""
    owner = (
        ProviderCircuit.workspace_id.is_(None)
        if workspace_id is None
        else ProviderCircuit.workspace_id == workspace_id
    )
    rows = session.scalars(
        select(ProviderCircuit).where(owner).order_by(ProviderCircuit.provider)
    ).all()
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
