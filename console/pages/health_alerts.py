"""The Health page's Alerts section: each incident with its actions (owners and admins) and its
history (anyone)."""

from __future__ import annotations

from typing import Any

import reflex as rx

from console.components.table import data_table
from console.state.health import HealthState


def _action(label: str, handler: rx.EventHandler, a: Any, test_id: str) -> rx.Component:
    # Disabled for viewers for display only: the service refuses them anyway.
    return rx.button(
        label,
        size="1",
        variant="soft",
        on_click=handler(a["id"]),
        disabled=~HealthState.can_change,
        data_testid=test_id,
    )


def _actions(a: Any) -> rx.Component:
    """What can be done with the alert in its state; every alert has its history."""
    state = a["state"]
    return rx.hstack(
        rx.cond(
            a["actionable"] != "",
            rx.fragment(
                rx.cond(
                    state != "acknowledged",
                    _action("Acknowledge", HealthState.acknowledge, a, "alert-acknowledge"),
                ),
                _action("Resolve", HealthState.resolve, a, "alert-resolve"),
                rx.cond(
                    state != "snoozed", _action("Snooze 1 h", HealthState.snooze, a, "alert-snooze")
                ),
                rx.cond(
                    state != "ignored", _action("Ignore", HealthState.ignore, a, "alert-ignore")
                ),
            ),
        ),
        rx.button(
            "History",
            size="1",
            variant="outline",
            on_click=HealthState.show_history(a["id"]),
            data_testid="alert-history",
        ),
        spacing="1",
        wrap="wrap",
    )


def alerts_table() -> rx.Component:
    """Unresolved alerts first (open, acknowledged, snoozed, ignored), then those resolved
    lately; owners and admins act on them, anyone reads their history."""
    return rx.cond(
        HealthState.alerts.length() > 0,  # type: ignore[attr-defined]
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[
                        rx.table.column_header_cell(h)
                        for h in (
                            "Rule",
                            "Severity",
                            "State",
                            "Count",
                            "First seen",
                            "Last seen",
                            "Message",
                            "",
                        )
                    ]
                )
            ),
            rx.table.body(
                rx.foreach(
                    HealthState.alerts,
                    lambda a: rx.table.row(
                        rx.table.cell(a["rule"]),
                        rx.table.cell(a["severity"]),
                        rx.table.cell(
                            rx.text(a["state"], data_testid="alert-state"),
                            rx.cond(
                                a["regressed"] != "",
                                rx.badge(
                                    "regressed", color_scheme="red", data_testid="alert-regressed"
                                ),
                            ),
                        ),
                        rx.table.cell(a["count"]),
                        rx.table.cell(a["first_seen"]),
                        rx.table.cell(a["last_seen"]),
                        rx.table.cell(a["message"]),
                        rx.table.cell(_actions(a)),
                        data_testid="alert-row",
                    ),
                )
            ),
            width="100%",
            variant="surface",
            data_testid="alerts-table",
        ),
        rx.callout("No alerts.", icon="info", data_testid="alerts-table-empty"),
    )


def history_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Alert history"),
            rx.dialog.description(HealthState.history_title, size="2"),
            data_table(
                [("When", "at"), ("What", "what"), ("Who", "who"), ("Detail", "detail")],
                HealthState.history,
                "Nothing recorded for this alert.",
                "alert-history-table",
            ),
            rx.dialog.close(rx.button("Close", variant="soft", data_testid="alert-history-close")),
            max_width="56rem",
        ),
        open=HealthState.history_open,
        on_open_change=HealthState.set_history_open,
    )
