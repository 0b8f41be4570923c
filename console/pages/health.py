"""The Health page: a tile per connected provider, the charts (calls by outcome and latency of
one provider, webhook intake, the outbox now) over the chosen window, and the alerts."""

from __future__ import annotations

from typing import Any

import reflex as rx
from plotly.graph_objs import Figure
from plotly.graph_objs.layout import Template

from backend.health.page import WINDOWS
from console.components.table import data_table
from console.layout import page
from console.pages.health_alerts import alerts_table, history_dialog
from console.state.health import HealthState

# One small template for every chart instead of Plotly's default one inlined in each (tens of
# kilobytes per chart in the page's code).
_TEMPLATE = Template(layout={"paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)"})
_CONFIG = {"displaylogo": False, "responsive": True}


def _status_badge(status: Any) -> rx.Component:
    return rx.match(
        status,
        ("operational", rx.badge("operational", color_scheme="green", size="2")),
        ("degraded", rx.badge("degraded", color_scheme="amber", size="2")),
        ("partial outage", rx.badge("partial outage", color_scheme="orange", size="2")),
        ("major outage", rx.badge("major outage", color_scheme="red", size="2")),
        rx.badge(status, size="2"),
    )


def _fact(label: str, value: Any, test_id: str) -> rx.Component:
    return rx.data_list.item(
        rx.data_list.label(label, min_width="7rem"),
        rx.data_list.value(rx.text(value, size="2", data_testid=test_id)),
    )


def _waiting(t: Any) -> rx.Component:
    """What waits on a troubled provider, each a link to where the operator can see it."""
    return rx.cond(
        t.waiting.length() > 0,
        rx.vstack(
            rx.text("Waiting on it:", size="2", weight="bold"),
            rx.foreach(
                t.waiting,
                lambda w: rx.link(w.text, href=w.href, size="2", data_testid="tile-waiting"),
            ),
            spacing="1",
            data_testid="tile-impact",
        ),
    )


def _tile(t: Any) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading(t.name, size="3"),
                _status_badge(t.status),
                rx.cond(t.live, rx.badge("live show: judged on 5 minutes", color_scheme="red")),
                align="center",
                wrap="wrap",
                data_testid="tile-status",
            ),
            rx.text(t.reason, size="2", data_testid="tile-reason"),
            rx.cond(
                t.note != "",
                rx.callout(t.note, icon="triangle-alert", color_scheme="amber", size="1"),
            ),
            _waiting(t),
            rx.data_list.root(
                _fact("Succeeded", t.success, "tile-success"),
                _fact("Latency", t.latency, "tile-latency"),
                _fact("Calls", t.calls, "tile-calls"),
                _fact("Last success", t.last_ok, "tile-last-ok"),
                _fact("Last error", t.last_error, "tile-last-error"),
                _fact("Breaker", t.breaker, "tile-breaker"),
                _fact("Rate limit", t.headroom, "tile-headroom"),
                rx.cond(t.token != "", _fact("Google access", t.token, "tile-token")),
                size="1",
                orientation="vertical",
                spacing="1",
            ),
            rx.hstack(
                rx.button(
                    "See recent failures",
                    size="1",
                    variant="soft",
                    on_click=HealthState.show_failures(t.provider),
                    data_testid="tile-failures",
                ),
                rx.button(
                    "Chart it",
                    size="1",
                    variant="outline",
                    on_click=HealthState.chart(t.provider),
                    data_testid="tile-chart",
                ),
                rx.link("Open its jobs", href=t.jobs_href, size="2", data_testid="tile-jobs"),
                align="center",
                wrap="wrap",
            ),
            spacing="2",
            align="start",
        ),
        width="22rem",
        data_testid="health-tile",
        data_provider=t.provider,
        data_status=t.status,
    )


def _tiles() -> rx.Component:
    return rx.cond(
        HealthState.tiles.length() > 0,
        rx.flex(
            rx.foreach(HealthState.tiles, _tile),
            wrap="wrap",
            gap="3",
            data_testid="health-tiles",
        ),
        rx.callout(
            "No provider is connected yet: connect one under Integrations, and its calls show "
            "here.",
            icon="info",
            data_testid="health-tiles-empty",
        ),
    )


def _window_switch() -> rx.Component:
    return rx.segmented_control.root(
        *[rx.segmented_control.item(w.label, value=w.key) for w in WINDOWS.values()],
        value=HealthState.window,
        on_change=HealthState.set_window,
        data_testid="health-window",
    )


def _chart(figure: Any, test_id: str) -> rx.Component:
    return rx.box(
        rx.plotly.basic(data=figure.to(Figure), template=_TEMPLATE, config=_CONFIG),
        width="100%",
        min_width="20rem",
        flex="1 1 26rem",
        data_testid=test_id,
    )


def _calls_charts() -> rx.Component:
    return rx.cond(
        HealthState.has_calls,
        rx.flex(
            _chart(HealthState.outcomes_chart, "chart-outcomes"),
            _chart(HealthState.latency_chart, "chart-latency"),
            wrap="wrap",
            gap="3",
            width="100%",
        ),
        rx.callout(
            "No calls to this provider in the window: choose a longer window or another provider.",
            icon="info",
            data_testid="chart-calls-empty",
        ),
    )


def _provider_choice() -> rx.Component:
    return rx.select.root(
        rx.select.trigger(placeholder="Provider", data_testid="chart-provider"),
        rx.select.content(
            rx.foreach(HealthState.tiles, lambda t: rx.select.item(t.name, value=t.provider))
        ),
        value=HealthState.chart_provider,
        on_change=HealthState.chart,
    )


def failures_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(HealthState.failures_title),
            rx.cond(
                HealthState.failures_capped,
                rx.text(
                    "Many calls failed: these are the latest 500.", size="2", color_scheme="gray"
                ),
            ),
            data_table(
                [("Error", "error"), ("Outcome", "outcome"), ("Calls", "count"), ("Last", "last")],
                HealthState.failures,
                "No call failed in the last hour.",
                "failures-table",
            ),
            rx.hstack(
                rx.link(
                    "Open the jobs of this provider",
                    href=HealthState.failures_jobs_href,
                    data_testid="failures-jobs",
                ),
                rx.spacer(),
                rx.dialog.close(rx.button("Close", variant="soft", data_testid="failures-close")),
                align="center",
                width="100%",
            ),
            max_width="56rem",
        ),
        open=HealthState.failures_open,
        on_open_change=HealthState.set_failures_open,
    )


def health_page() -> rx.Component:
    return page(
        "Health",
        rx.hstack(
            rx.heading("Providers", size="4"),
            rx.spacer(),
            rx.text("Show the last", size="2"),
            _window_switch(),
            align="center",
            width="100%",
        ),
        _tiles(),
        rx.hstack(
            rx.heading("Calls over time", size="4"),
            _provider_choice(),
            align="center",
        ),
        _calls_charts(),
        rx.heading("Webhooks and the outbox", size="4"),
        rx.flex(
            rx.cond(
                HealthState.has_intake,
                _chart(HealthState.intake_chart, "chart-intake"),
                rx.callout(
                    "No webhook arrived in the window.",
                    icon="info",
                    data_testid="chart-intake-empty",
                ),
            ),
            rx.vstack(
                rx.cond(HealthState.has_queue, _chart(HealthState.queue_chart, "chart-queue")),
                rx.text(HealthState.oldest_job, size="2", data_testid="oldest-job"),
                flex="1 1 26rem",
            ),
            wrap="wrap",
            gap="3",
            width="100%",
        ),
        rx.heading("Alerts", size="4"),
        alerts_table(),
        history_dialog(),
        failures_dialog(),
    )
