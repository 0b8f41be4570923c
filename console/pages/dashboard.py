"""The Dashboard."""

from __future__ import annotations

import reflex as rx

from console.components.table import figure_card
from console.layout import page
from console.state.dashboard import DashboardState


def dashboard_page() -> rx.Component:
    return page(
        "Dashboard",
        rx.text(
            "Workspace ",
            rx.text.strong(DashboardState.workspace_name, data_testid="dash-workspace"),
            " on the ",
            rx.text.strong(DashboardState.plan, data_testid="dash-plan"),
            " plan.",
        ),
        rx.flex(
            figure_card(
                "Connected integrations", DashboardState.connected_integrations, "dash-integrations"
            ),
            figure_card("Open alerts", DashboardState.open_alerts, "dash-alerts"),
            figure_card(
                "Queued jobs",
                DashboardState.queued_jobs,
                "dash-queued",
                hint=rx.cond(
                    DashboardState.dead_jobs > 0, f"{DashboardState.dead_jobs} dead, see Jobs", ""
                ),
            ),
            figure_card("Shows", DashboardState.shows, "dash-shows"),
            figure_card(
                "Scheduler",
                rx.cond(DashboardState.scheduler_alive, "Running", "Not running"),
                "dash-scheduler",
                hint=DashboardState.heartbeat_text,
            ),
            wrap="wrap",
            gap="1rem",
        ),
        # Refresh the figures while the page is open.
        rx.moment(interval=5000, on_change=DashboardState.load, display="none"),
    )
