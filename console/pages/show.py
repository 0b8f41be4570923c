"""A show's page: its title, figures and two tabs (Invoices, Import claims)."""

from __future__ import annotations

import reflex as rx

from console.components.status_badge import status_color
from console.layout import page
from console.pages.show_claims import claims_tab
from console.pages.show_invoices import figures, invoices_tab
from console.state.show.base import ShowState


def show_page() -> rx.Component:
    return page(
        "Show",
        rx.cond(
            ShowState.missing != "",
            rx.callout(ShowState.missing, icon="info", data_testid="show-missing"),
            rx.cond(
                ShowState.loaded,
                rx.vstack(
                    rx.hstack(
                        rx.link("← Shows", href="/shows", size="2"),
                        rx.heading(ShowState.title, size="5", data_testid="show-title"),
                        rx.badge(
                            ShowState.show_status, color_scheme=status_color(ShowState.show_status)
                        ),
                        rx.text("started ", ShowState.started, size="2", color_scheme="gray"),
                        align="center",
                        spacing="3",
                    ),
                    figures(),
                    rx.tabs.root(
                        rx.tabs.list(
                            rx.tabs.trigger("Invoices", value="invoices"),
                            rx.tabs.trigger(
                                "Import claims", value="claims", data_testid="tab-claims"
                            ),
                        ),
                        rx.tabs.content(invoices_tab(), value="invoices"),
                        rx.tabs.content(claims_tab(), value="claims"),
                        default_value="invoices",
                        width="100%",
                    ),
                    width="100%",
                    spacing="4",
                ),
                rx.spinner(size="3"),
            ),
        ),
    )
