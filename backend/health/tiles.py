"""One Health tile per connected provider: its status in the words status pages use, why, and
the figures behind it (success rate, p50/p95/p99 latency, calls, last success, last error,
breaker and its next probe, rate-limit headroom, Google's token), and, while it is in trouble,
what waits on it (backend/health/impact.py).

The status is judged on the last 15 minutes, what is happening now; the figures are of the
window the page shows (15 minutes, 24 hours or 7 days). While one of the workspace's shows is
live, Stripe and Messenger are judged on 5 minutes with tighter thresholds, as the alert rules
do (backend/health/rules.py): buyers are paying right now.

A provider whose last call failed (the integration says it is unavailable, or refused the
key) is at least degraded, however few calls there were: one failed connection test is all
there may be to go on.

Everything is read from the rollups, the workspace's breakers and the latest-call table; only
this workspace's rows. Tested in tests/health/test_tiles.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.connections import credentials, google_tokens, provider_status
from backend.health import figures, impact
from backend.health.figures import Rollup
from backend.health.rules import LIVE_PROVIDERS
from backend.platform import circuits
from backend.platform.provider_failures import provider_name
from backend.security.crypto import CryptoError
from models import (
    Integration,
    IntegrationStatus,
    ProviderCallLatest,
    Show,
    ShowStatus,
    utcnow,
)

OPERATIONAL = "operational"
DEGRADED = "degraded"
PARTIAL_OUTAGE = "partial outage"
MAJOR_OUTAGE = "major outage"
# Worst first: the page lists troubled providers before the rest.
SEVERITY = {MAJOR_OUTAGE: 0, PARTIAL_OUTAGE: 1, DEGRADED: 2, OPERATIONAL: 3}


@dataclass(frozen=True, slots=True)
class Thresholds:
    window: dt.timedelta = dt.timedelta(minutes=15)
    # Fewer calls say too little: one failure out of two is a blip.
    min_calls: int = 5
    degraded_failure_rate: float = 0.05
    partial_failure_rate: float = 0.20
    slow_p95_ms: float = 2000.0


NORMAL = Thresholds()
LIVE = Thresholds(
    window=dt.timedelta(minutes=5),
    min_calls=3,
    degraded_failure_rate=0.02,
    partial_failure_rate=0.10,
    slow_p95_ms=1500.0,
)


def _minutes(window: dt.timedelta) -> str:
    return f"{int(window.total_seconds() // 60)} minutes"


def status_of(breaker: str, recent: Rollup, rules: Thresholds = NORMAL) -> tuple[str, str]:
    """(status, why in words) from the breaker and the calls of the status window."""
    if breaker == "open":
        return MAJOR_OUTAGE, "Calls kept failing, so the hub stopped calling it; work waits."
    if breaker == "half_open":
        return PARTIAL_OUTAGE, "Testing whether it answers again: one call is let through."
    span = _minutes(rules.window)
    if recent.calls >= rules.min_calls:
        rate = recent.failure_rate
        said = f"{rate:.0%} of {recent.calls} calls failed in the last {span}."
        if rate > rules.partial_failure_rate:
            return PARTIAL_OUTAGE, said
        if rate > rules.degraded_failure_rate:
            return DEGRADED, said
        p95 = recent.percentile(0.95)
        if p95 is not None and p95 > rules.slow_p95_ms:
            return DEGRADED, (
                f"Slow: 95% of calls answered within {p95 / 1000:.1f} s in the last {span} "
                f"(over {rules.slow_p95_ms / 1000:.1f} s)."
            )
    if recent.calls == 0:
        return OPERATIONAL, f"No calls in the last {span}."
    return OPERATIONAL, f"Answering normally in the last {span}."


@dataclass(frozen=True, slots=True)
class ProviderTile:
    provider: str
    name: str
    status: str
    reason: str
    live: bool  # judged on live-show thresholds
    # What the provider's last calls did to the integration, in the words every page uses
    # (backend/connections/provider_status.py): "Stripe is unavailable; work is waiting …",
    # "Stripe refused this workspace's credentials …"; empty when ready.
    note: str
    window: Rollup
    recent_calls: int
    breaker: str  # closed | open | half_open
    next_probe_at: dt.datetime | None
    last_ok_at: dt.datetime | None
    last_error_at: dt.datetime | None
    last_error: str | None
    # Rate limits: calls the provider answered 429 in the window, the pace the hub keeps for
    # this workspace's account (requests per second, None: not paced) and the busiest minute
    # of the status window.
    rate_limited: int
    pace_per_second: float | None
    peak_per_minute: int
    # Google: when the access the hub holds runs out (renewed by itself before then), or why
    # there is none to show; and when Google ends the grant itself (None: it does not), after
    # which only a reconnect brings Drive back.
    token_expires_at: dt.datetime | None = None
    token_note: str = ""
    grant_expires_at: dt.datetime | None = None
    waiting: list[impact.Waiting] = field(default_factory=list)

    @property
    def troubled(self) -> bool:
        return self.status != OPERATIONAL


def _next_probe(breaker: circuits.CircuitView | None) -> dt.datetime | None:
    """When an open breaker lets its next probe through (a half-open one: when its probe may
    be tried again)."""
    return breaker.opened_until if breaker is not None and breaker.state != "closed" else None


def _live(session: Session, workspace_id: int) -> bool:
    return (
        session.scalar(
            select(Show.id)
            .where(Show.workspace_id == workspace_id, Show.status == ShowStatus.LIVE)
            .limit(1)
        )
        is not None
    )


def _google_token(integration: Integration) -> tuple[dt.datetime | None, str]:
    """The access token's expiry, from the sealed credentials (renewed by a periodic job
    before then; the grant's own end is ``google_refresh_expiry``)."""
    try:
        secrets = credentials.unseal(integration)
    except CryptoError:
        return None, "The stored credentials cannot be read with this deployment's keys."
    if not google_tokens.is_oauth(secrets):
        return None, "Service account key: it does not expire."
    expiry = google_tokens.expiry_of(secrets)
    if expiry is None:
        return None, "Access renewed on first use."
    return expiry, "Access is renewed by itself 10 minutes before it expires."


def provider_tiles(
    session: Session,
    *,
    workspace_id: int,
    window: dt.timedelta = dt.timedelta(hours=24),
    now: dt.datetime | None = None,
) -> list[ProviderTile]:
    """The workspace's connected providers (active, or in error), the most troubled first."""
    now = now or utcnow()
    integrations = session.scalars(
        select(Integration)
        .where(
            Integration.workspace_id == workspace_id,
            Integration.status != IntegrationStatus.INACTIVE,
        )
        .order_by(Integration.provider)
    ).all()
    if not integrations:
        return []
    providers = [i.provider for i in integrations]
    minute = now.replace(second=0, microsecond=0)
    live = _live(session, workspace_id)
    rules_of = {p: LIVE if live and p in LIVE_PROVIDERS else NORMAL for p in providers}
    widest = max(r.window for r in rules_of.values())
    # A window of a day or more reads the hour rollups, from the hour it starts in.
    in_window = figures.by_provider(
        session,
        workspace_id=workspace_id,
        since=minute - window,
        providers=providers,
        hourly=window >= dt.timedelta(hours=24),
    )
    # The status windows include the current minute: an outage shows within seconds.
    recent_normal = figures.by_provider(
        session,
        workspace_id=workspace_id,
        since=minute - NORMAL.window + dt.timedelta(minutes=1),
        providers=providers,
    )
    recent_live = (
        figures.by_provider(
            session,
            workspace_id=workspace_id,
            since=minute - LIVE.window + dt.timedelta(minutes=1),
            providers=[p for p in providers if rules_of[p] is LIVE],
        )
        if live
        else {}
    )
    peaks = figures.peak_minute(
        session,
        workspace_id=workspace_id,
        since=minute - widest + dt.timedelta(minutes=1),
        providers=providers,
    )
    breakers = {c.provider: c for c in circuits.states(session, workspace_id=workspace_id)}
    latest = {
        row.provider: row
        for row in session.scalars(
            select(ProviderCallLatest).where(
                ProviderCallLatest.workspace_id == workspace_id,
                ProviderCallLatest.provider.in_(providers),
            )
        )
    }
    said_of = provider_status.states(session, workspace_id=workspace_id, integrations=integrations)
    tiles = []
    for integration in integrations:
        p = integration.provider
        rules = rules_of[p]
        recent = (recent_live if rules is LIVE else recent_normal).get(p, Rollup())
        breaker = breakers.get(p)
        breaker_state = breaker.state if breaker else "closed"
        status, reason = status_of(breaker_state, recent, rules)
        said = said_of[p]
        if status == OPERATIONAL and said.state in (
            provider_status.UNAVAILABLE,
            provider_status.REFUSED,
        ):
            # Too few calls for a rate, but the last one failed: not operational.
            status, reason = DEGRADED, "The last call failed; see below."
        last = latest.get(p)
        token: tuple[dt.datetime | None, str] = (None, "")
        grant_ends: dt.datetime | None = None
        if p == google_tokens.PROVIDER:
            token = _google_token(integration)
            grant_ends = google_tokens.google_refresh_expiry(session, workspace_id)
        tiles.append(
            ProviderTile(
                provider=p,
                name=provider_name(p),
                status=status,
                reason=reason,
                live=rules is LIVE,
                note=said.message if said.state != provider_status.READY else "",
                window=in_window.get(p, Rollup()),
                recent_calls=recent.calls,
                breaker=breaker_state,
                next_probe_at=_next_probe(breaker),
                last_ok_at=last.last_ok_at if last else None,
                last_error_at=last.last_error_at if last else None,
                last_error=last.last_error if last else None,
                rate_limited=in_window.get(p, Rollup()).rate_limited,
                pace_per_second=circuits.RATE_LIMITS.get(p),
                peak_per_minute=peaks.get(p, 0),
                token_expires_at=token[0],
                token_note=token[1],
                grant_expires_at=grant_ends,
            )
        )
    troubled = [t.provider for t in tiles if t.troubled]
    waiting = impact.waiting_on(session, workspace_id=workspace_id, providers=troubled)
    tiles = [replace(t, waiting=waiting.get(t.provider, [])) for t in tiles]
    tiles.sort(key=lambda t: (SEVERITY[t.status], t.name))
    return tiles
