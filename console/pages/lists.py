"""The list pages: Timeline, Health."""

from __future__ import annotations

import reflex as rx

from console.components.table import data_table
from console.layout import page
from console.state.health import HealthState
from console.state.timeline import TimelineState


def timeline_page() -> rx.Component:
    return page(
        "Timeline",
        data_table(
            [("When", "at"), ("Source", "source"), ("Event", "name"), ("Who", "subject")],
            TimelineState.rows,
            "Nothing has happened yet: opens, clicks and payments appear here.",
            "timeline-table",
        ),
    )


def health_page() -> rx.Component:
    return page(
        "Health",
        rx.foreach(
            HealthState.troubles,
            lambda trouble: rx.callout(
                trouble, icon="triangle-alert", color_scheme="amber", data_testid="health-trouble"
            ),
        ),
        rx.heading("Providers now", size="4"),
        data_table(
            [
                ("Provider", "provider"),
                ("Breaker", "breaker"),
                ("Jobs waiting", "waiting"),
                ("State", "state"),
                ("Last error", "error"),
            ],
            HealthState.now,
            "No provider has been called yet, and no work waits on one.",
            "health-now-table",
        ),
        rx.heading("Providers, last 24 hours", size="4"),
        data_table(
            [
                ("Provider", "provider"),
                ("Calls", "calls"),
                ("Success", "success"),
                ("Average latency", "latency"),
            ],
            HealthState.providers,
            "No provider calls in the last 24 hours.",
            "health-table",
        ),
        rx.heading("Open alerts", size="4"),
        alerts_table(),
    )


def alerts_table() -> rx.Component:
    """Open and acknowledged alerts; owners and admins acknowledge one once they are on it."""
    return rx.cond(
        HealthState.alerts.length() > 0,  # type: ignore[attr-defined]
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[
                        rx.table.column_header_cell(h)
                        for h in ("When", "Priority", "Message", "State", "")
                    ]
                )
            ),
            rx.table.body(
                rx.foreach(
                    HealthState.alerts,
                    lambda a: rx.table.row(
                        rx.table.cell(a["at"]),
                        rx.table.cell(a["priority"]),
                        rx.table.cell(a["message"]),
                        rx.table.cell(a["state"]),
                        rx.table.cell(
                            rx.cond(
                                a["state"] == "open",
                                rx.button(
                                    "Acknowledge",
                                    size="1",
                                    variant="soft",
                                    on_click=HealthState.acknowledge(a["id"]),
                                    disabled=~HealthState.can_change,
                                    data_testid="alert-acknowledge",
                                ),
                            )
                        ),
                        data_testid="alert-row",
                    ),
                )
            ),
            width="100%",
            variant="surface",
            data_testid="alerts-table",
        ),
        rx.callout("No open alerts.", icon="info", data_testid="alerts-table-empty"),
    )
