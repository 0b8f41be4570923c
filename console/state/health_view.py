"""The Health page's figures as the page shows them: tiles in words, and the charts as plain
Plotly figure dicts (data and layout), which the browser's Plotly draws. Plain values only: the
state holds these, and every public var is sent to the browser.

Tested in tests/console/test_health_view.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from backend.health import failures as failures_service
from backend.health.figures import Point
from backend.health.impact import Waiting
from backend.health.intake import IntakePoint
from backend.health.page import HealthFigures
from backend.health.queue import QueueNow
from backend.health.tiles import ProviderTile
from backend.platform.provider_failures import provider_name
from console.state.formatting import when

STATUS_COLORS = {
    "operational": "green",
    "degraded": "amber",
    "partial outage": "orange",
    "major outage": "red",
}
OUTCOME_COLORS = {
    "ok": "#30a46c",
    "rejected": "#e5484d",
    "rate_limited": "#f76b15",
    "unavailable": "#cd2b31",
    "timeout": "#8e4ec6",
}
OUTCOME_WORDS = {
    "ok": "ok",
    "rejected": "rejected",
    "rate_limited": "rate limited",
    "unavailable": "unavailable",
    "timeout": "timed out",
}
Figure = dict[str, Any]


@dataclass
class WaitingLink:
    text: str = ""
    href: str = ""


@dataclass
class TileView:
    provider: str = ""
    name: str = ""
    status: str = ""
    color: str = "gray"
    reason: str = ""
    live: bool = False
    note: str = ""
    calls: str = ""
    success: str = ""
    latency: str = ""
    last_ok: str = ""
    last_error: str = ""
    breaker: str = ""
    headroom: str = ""
    token: str = ""
    waiting: list[WaitingLink] = field(default_factory=list)
    jobs_href: str = ""


def ms(value: float | None) -> str:
    if value is None:
        return "none"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def ago(moment: dt.datetime | None, now: dt.datetime) -> str:
    """ "4 minutes ago", "in 25 seconds": a time relative to now, in words."""
    if moment is None:
        return ""
    seconds = int((now - moment).total_seconds())
    future, seconds = seconds < 0, abs(seconds)
    if seconds < 90:
        amount = f"{seconds} second{'s' if seconds != 1 else ''}"
    elif seconds < 90 * 60:
        amount = f"{round(seconds / 60)} minutes"
    elif seconds < 36 * 3600:
        amount = f"{round(seconds / 3600)} hours"
    else:
        amount = f"{round(seconds / 86400)} days"
    return f"in {amount}" if future else f"{amount} ago"


def jobs_href(provider: str, kind: str | None = None) -> str:
    query = {"provider": provider, **({"kind": kind} if kind else {})}
    return f"/jobs?{urlencode(query)}"


def waiting_link(w: Waiting) -> WaitingLink:
    """Invoices link to their show, where the operator sees each buyer's; the rest to the
    Jobs page filtered to the provider and kind."""
    href = f"/shows/{w.show_id}" if w.show_id is not None else jobs_href(w.provider, w.kind)
    return WaitingLink(w.text, href)


def _breaker(tile: ProviderTile, now: dt.datetime) -> str:
    if tile.breaker == "open":
        probe = tile.next_probe_at
        return "open: calls are held" + (
            f"; next probe {when(probe)} ({ago(probe, now)})" if probe else ""
        )
    if tile.breaker == "half_open":
        return "half-open: one probe call is on its way"
    return "closed: calls flow"


def _headroom(tile: ProviderTile, window_label: str) -> str:
    limited = f"{tile.rate_limited} rate-limited in {window_label}"
    if tile.pace_per_second is None:
        return f"not paced by the hub; {limited}"
    allowed = tile.pace_per_second * 60
    left = max(0.0, 1 - tile.peak_per_minute / allowed)
    return (
        f"busiest minute {tile.peak_per_minute} of {allowed:,.0f} calls allowed "
        f"({left:.0%} headroom); {limited}"
    )


def _token(tile: ProviderTile, now: dt.datetime) -> str:
    said = tile.token_note
    if tile.token_expires_at is not None:
        expiry = tile.token_expires_at
        said = f"access expires {when(expiry)} ({ago(expiry, now)}). {said}"
    if tile.grant_expires_at is not None:
        ends = tile.grant_expires_at
        verb = "ends" if ends > now else "ended"
        said += (
            f" Google {verb} the grant {when(ends)} ({ago(ends, now)}): reconnect Google Drive "
            "under Integrations before then."
        )
    return said.strip()


def tile_view(tile: ProviderTile, *, window_label: str, now: dt.datetime) -> TileView:
    figures = tile.window
    success = figures.success_rate
    return TileView(
        provider=tile.provider,
        name=tile.name,
        status=tile.status,
        color=STATUS_COLORS.get(tile.status, "gray"),
        reason=tile.reason,
        live=tile.live,
        note=tile.note,
        calls=f"{figures.calls:,} calls in {window_label}",
        success="no calls" if success is None else f"{success:.1%} succeeded",
        latency=(
            f"p50 {ms(figures.percentile(0.5))} · p95 {ms(figures.percentile(0.95))} · "
            f"p99 {ms(figures.percentile(0.99))}"
        ),
        last_ok=ago(tile.last_ok_at, now) or "never",
        last_error=(
            f"{tile.last_error or 'no error recorded'} ({ago(tile.last_error_at, now)})"
            if tile.last_error_at
            else "none"
        ),
        breaker=_breaker(tile, now),
        headroom=_headroom(tile, window_label),
        token=_token(tile, now),
        waiting=[waiting_link(w) for w in tile.waiting] if tile.troubled else [],
        jobs_href=jobs_href(tile.provider),
    )


# -- charts -----------------------------------------------------------------------------------

_LAYOUT: dict[str, Any] = {
    "height": 260,
    "margin": {"l": 48, "r": 16, "t": 36, "b": 36},
    "legend": {"orientation": "h", "y": -0.2},
    "font": {"size": 11},
}


def _x(points: list[Point] | list[IntakePoint]) -> list[str]:
    return [p.at.isoformat() for p in points]


def outcomes_figure(points: list[Point], name: str) -> Figure:
    """Calls per bucket, stacked by outcome."""
    x = _x(points)
    traces = [
        {
            "type": "bar",
            "name": OUTCOME_WORDS[outcome],
            "x": x,
            "y": [p.rollup.outcomes.get(outcome, 0) for p in points],
            "marker": {"color": color},
        }
        for outcome, color in OUTCOME_COLORS.items()
    ]
    layout = {**_LAYOUT, "barmode": "stack", "title": {"text": f"Calls to {name} by outcome"}}
    return {"data": traces, "layout": layout}


def latency_figure(points: list[Point], name: str) -> Figure:
    """p50 and p95 per bucket; a bucket without calls is a gap, not a zero."""
    x = _x(points)
    traces = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": label,
            "x": x,
            "y": [p.rollup.percentile(q) for p in points],
            "connectgaps": False,
        }
        for label, q in (("p50", 0.5), ("p95", 0.95))
    ]
    layout = {
        **_LAYOUT,
        "title": {"text": f"{name} latency (ms)"},
        "yaxis": {"rangemode": "tozero"},
    }
    return {"data": traces, "layout": layout}


def intake_figure(intake: dict[str, list[IntakePoint]], step: dt.timedelta) -> Figure:
    """Webhooks received per minute (bars) and the mean lag to handled (lines, right axis)."""
    minutes = step.total_seconds() / 60
    traces: list[dict[str, Any]] = []
    for provider, points in intake.items():
        name = provider_name(provider)
        traces.append(
            {
                "type": "bar",
                "name": f"{name} received / min",
                "x": _x(points),
                "y": [round(p.received / minutes, 2) for p in points],
            }
        )
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{name} lag (s)",
                "x": _x(points),
                "y": [p.lag_mean_s for p in points],
                "yaxis": "y2",
                "connectgaps": False,
            }
        )
    layout = {
        **_LAYOUT,
        "title": {"text": "Webhooks received, and seconds until handled"},
        "yaxis": {"title": {"text": "per minute"}, "rangemode": "tozero"},
        "yaxis2": {"overlaying": "y", "side": "right", "rangemode": "tozero"},
    }
    return {"data": traces, "layout": layout}


def queue_figure(queue: QueueNow) -> Figure:
    kinds = [k.kind for k in queue.kinds]
    traces = [
        {"type": "bar", "name": "pending", "x": kinds, "y": [k.pending for k in queue.kinds]},
        {"type": "bar", "name": "running", "x": kinds, "y": [k.running for k in queue.kinds]},
    ]
    layout = {**_LAYOUT, "barmode": "stack", "title": {"text": "Jobs in the outbox now, by kind"}}
    return {"data": traces, "layout": layout}


def oldest_job(queue: QueueNow, now: dt.datetime) -> str:
    oldest = queue.oldest
    if oldest is None:
        return "No job is waiting in the outbox."
    return (
        f"The oldest waiting job ({oldest.kind}) was queued {ago(oldest.oldest_pending_at, now)}."
    )


@dataclass
class HealthView:
    """Everything but the alerts, as the state holds it."""

    tiles: list[TileView] = field(default_factory=list)
    chart_provider: str = ""
    outcomes: Figure = field(default_factory=dict)
    latency: Figure = field(default_factory=dict)
    intake: Figure = field(default_factory=dict)
    queue: Figure = field(default_factory=dict)
    oldest_job: str = ""
    has_calls: bool = False
    has_intake: bool = False
    has_queue: bool = False


def health_view(found: HealthFigures) -> HealthView:
    label = found.window.label
    name = provider_name(found.provider) if found.provider else ""
    return HealthView(
        tiles=[tile_view(t, window_label=label, now=found.now) for t in found.tiles],
        chart_provider=found.provider or "",
        outcomes=outcomes_figure(found.calls, name),
        latency=latency_figure(found.calls, name),
        intake=intake_figure(found.intake, found.window.step),
        queue=queue_figure(found.queue),
        oldest_job=oldest_job(found.queue, found.now),
        has_calls=any(p.rollup.calls for p in found.calls),
        has_intake=bool(found.intake),
        has_queue=bool(found.queue.kinds),
    )


def failure_rows(found: failures_service.RecentFailures, now: dt.datetime) -> list[dict[str, str]]:
    return [
        {
            "error": g.error,
            "outcome": OUTCOME_WORDS.get(g.outcome, g.outcome),
            "count": str(g.count),
            "last": ago(g.last_at, now),
        }
        for g in found.groups
    ]
