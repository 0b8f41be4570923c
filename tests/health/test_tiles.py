"""A Health tile per connected provider, its status in a status page's words (operational,
degraded, partial outage, major outage) with the reason, and its figures: success rate,
percentiles, last success and error, breaker and next probe, rate-limit headroom, Google's
token, and what waits on it while it is in trouble."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from backend.connections import credentials, facts, google_tokens
from backend.health import tiles
from backend.health.figures import Rollup
from backend.platform import circuits
from console.state.health_view import tile_view
from models import (
    Integration,
    IntegrationStatus,
    Show,
    ShowStatus,
    Workspace,
    utcnow,
)
from tests import factories
from tests.support.calls import add_calls, call

MINUTE = dt.timedelta(minutes=1)


def _rollup(ok: int, failed: int = 0, latency_ms: int = 100) -> Rollup:
    from backend.platform.call_log_writer import bucket_of
    from models import BUCKET_COLUMNS

    histogram = dict.fromkeys(BUCKET_COLUMNS, 0)
    histogram[bucket_of(latency_ms)] = ok + failed
    outcomes = {"ok": ok, "rejected": 0, "rate_limited": 0, "unavailable": failed, "timeout": 0}
    return Rollup(outcomes, latency_ms * (ok + failed), tuple(histogram.values()))


def test_each_status_in_words() -> None:
    rules = tiles.NORMAL
    assert tiles.status_of("closed", _rollup(100))[0] == tiles.OPERATIONAL
    # Failures over the degraded threshold, then over the partial-outage one.
    assert tiles.status_of("closed", _rollup(90, 10))[0] == tiles.DEGRADED
    assert tiles.status_of("closed", _rollup(70, 30))[0] == tiles.PARTIAL_OUTAGE
    # Slow but answering: degraded.
    slow = _rollup(100, latency_ms=int(rules.slow_p95_ms) * 2)
    status, why = tiles.status_of("closed", slow)
    assert status == tiles.DEGRADED and why.startswith("Slow")
    assert tiles.status_of("half_open", _rollup(100))[0] == tiles.PARTIAL_OUTAGE
    assert tiles.status_of("open", _rollup(100))[0] == tiles.MAJOR_OUTAGE


def test_too_few_calls_say_nothing_about_the_rate() -> None:
    few = _rollup(1, tiles.NORMAL.min_calls - 2)
    assert tiles.status_of("closed", few)[0] == tiles.OPERATIONAL


def test_a_live_show_judges_stripe_on_tighter_thresholds() -> None:
    # 8% failing: fine for an ordinary evening's threshold of partial outage, not during a show.
    calls = _rollup(92, 8)
    assert tiles.status_of("closed", calls, tiles.NORMAL)[0] == tiles.DEGRADED
    assert tiles.status_of("closed", calls, tiles.LIVE)[0] == tiles.DEGRADED
    calls = _rollup(88, 12)
    assert tiles.status_of("closed", calls, tiles.NORMAL)[0] == tiles.DEGRADED
    assert tiles.status_of("closed", calls, tiles.LIVE)[0] == tiles.PARTIAL_OUTAGE


def _connect(session: Session, ws: Workspace, provider: str) -> Integration:
    row = Integration(
        workspace_id=ws.id,
        provider=provider,
        display_name=provider.title(),
        status=IntegrationStatus.ACTIVE,
    )
    session.add(row)
    session.flush()
    return row


def test_the_tiles_show_each_status_worst_first_with_their_figures(session: Session) -> None:
    ws, other = factories.workspace(session), factories.workspace(session, slug="other")
    for provider in ("stripe", "sendgrid", "slack", "messenger", "zoho_books"):
        _connect(session, ws, provider)
    _connect(session, other, "stripe")
    now = utcnow()
    at = now - 2 * MINUTE
    add_calls(
        session,
        # Stripe: healthy, fast.
        *(call(ws.id, "stripe", at=at, latency_ms=80) for _ in range(20)),
        # SendGrid: one in eight failing.
        *(call(ws.id, "sendgrid", at=at) for _ in range(14)),
        *(
            call(ws.id, "sendgrid", at=at, outcome="rate_limited", http_status=429)
            for _ in range(2)
        ),
        # Slack: its breaker will be half-open; Messenger: open.
        *(call(ws.id, "messenger", at=at, outcome="unavailable") for _ in range(6)),
        # Another workspace failing at Stripe changes nothing here.
        *(call(other.id, "stripe", at=at, outcome="unavailable") for _ in range(30)),
    )

    def fail(provider: str, workspace_id: int) -> None:
        for _ in range(circuits.POLICY.consecutive_failures):
            circuits.record(
                session, provider=provider, workspace_id=workspace_id, ok=False, error="down"
            )

    fail("slack", ws.id)
    # Slack's open period is over: the next claim lets one probe through (half-open).
    circuits.claim_gate(session, now=now + dt.timedelta(hours=1))
    fail("messenger", ws.id)
    fail("stripe", other.id)
    session.commit()

    found = tiles.provider_tiles(session, workspace_id=ws.id, now=now)
    by = {t.provider: t for t in found}
    assert [t.provider for t in found][:3] == ["messenger", "slack", "sendgrid"]
    assert by["messenger"].status == tiles.MAJOR_OUTAGE
    assert by["messenger"].breaker == "open" and by["messenger"].next_probe_at is not None
    assert by["slack"].status == tiles.PARTIAL_OUTAGE and by["slack"].breaker == "half_open"
    assert by["sendgrid"].status == tiles.DEGRADED
    assert by["sendgrid"].reason == "12% of 16 calls failed in the last 15 minutes."
    assert by["sendgrid"].rate_limited == 2
    assert by["sendgrid"].pace_per_second == circuits.RATE_LIMITS["sendgrid"]
    assert by["sendgrid"].peak_per_minute == 16
    stripe = by["stripe"]
    assert stripe.status == tiles.OPERATIONAL and stripe.breaker == "closed"
    assert stripe.window.calls == 20 and stripe.window.success_rate == 1.0
    p50, p99 = stripe.window.percentile(0.5), stripe.window.percentile(0.99)
    assert p50 is not None and p99 is not None and 50 < p50 <= p99 <= 100
    assert stripe.last_ok_at is not None and stripe.last_error is None
    assert by["messenger"].last_error == "HTTP 503 Service Unavailable"
    assert by["zoho_books"].status == tiles.OPERATIONAL and by["zoho_books"].window.calls == 0
    # Only this workspace's connected providers.
    assert set(by) == {"stripe", "sendgrid", "slack", "messenger", "zoho_books"}


def test_a_live_show_judges_stripe_on_five_minutes(session: Session) -> None:
    ws = factories.workspace(session)
    _connect(session, ws, "stripe")
    now = utcnow()
    # 3 of 10 calls failed 10 minutes ago, then 10 fine: 15% over 15 minutes (degraded),
    # and nothing wrong over the last five.
    add_calls(
        session,
        *(call(ws.id, "stripe", at=now - 10 * MINUTE, outcome="unavailable") for _ in range(3)),
        *(call(ws.id, "stripe", at=now - 10 * MINUTE) for _ in range(7)),
        *(call(ws.id, "stripe", at=now - MINUTE) for _ in range(10)),
    )
    [tile] = tiles.provider_tiles(session, workspace_id=ws.id, now=now)
    assert tile.status == tiles.DEGRADED and not tile.live
    session.add(Show(workspace_id=ws.id, title="Live", status=ShowStatus.LIVE, currency="usd"))
    session.flush()
    [tile] = tiles.provider_tiles(session, workspace_id=ws.id, now=now)
    assert tile.live and tile.status == tiles.OPERATIONAL
    assert tile.reason == "Answering normally in the last 5 minutes."


def test_a_google_tile_says_when_the_access_token_expires(session: Session) -> None:
    ws = factories.workspace(session)
    row = _connect(session, ws, google_tokens.PROVIDER)
    expiry = (utcnow() + dt.timedelta(minutes=42)).replace(microsecond=0)
    credentials.seal(
        row,
        {
            "method": "oauth",
            "access_token": "ya29.token",
            "refresh_token": "1//refresh",
            "expiry": expiry.isoformat(),
        },
    )
    session.flush()
    [tile] = tiles.provider_tiles(session, workspace_id=ws.id)
    assert tile.token_expires_at == expiry
    assert "renewed by itself" in tile.token_note
    assert tile.grant_expires_at is None  # Google said no end
    # Google grants for a limited time (an app in "testing"): the tile says when it ends.
    grant_ends = (utcnow() + dt.timedelta(days=6)).replace(microsecond=0)
    row.settings = facts.replaced(
        row.settings or {}, {google_tokens.REFRESH_EXPIRY: grant_ends.isoformat()}
    )
    session.flush()
    [tile] = tiles.provider_tiles(session, workspace_id=ws.id)
    assert tile.grant_expires_at == grant_ends
    said = tile_view(tile, window_label="24 hours", now=utcnow()).token
    assert "Google ends the grant" in said and "reconnect Google Drive" in said
    credentials.seal(row, {"service_account_json": "{}"})
    session.flush()
    [tile] = tiles.provider_tiles(session, workspace_id=ws.id)
    assert tile.token_expires_at is None and "does not expire" in tile.token_note
