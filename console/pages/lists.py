"""The list pages: Integrations, Timeline, Health."""

from __future__ import annotations

import reflex as rx

from console.components.table import data_table
from console.layout import page
from console.state.pages import HealthState, IntegrationsState, TimelineState


def integrations_page() -> rx.Component:
    return page(
        "Integrations",
        data_table(
            [
                ("Provider", "provider"),
                ("Name", "name"),
                ("Status", "status"),
                ("Last checked", "checked"),
                ("Last error", "error"),
            ],
            IntegrationsState.rows,
            "No integrations are connected in this workspace yet.",
            "integrations-table",
        ),
    )


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
        data_table(
            [("When", "at"), ("Priority", "priority"), ("Message", "message"), ("State", "state")],
            HealthState.alerts,
            "No open alerts.",
            "alerts-table",
        ),
    )
