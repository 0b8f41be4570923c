"""The Shows page: every show with its invoice counts."""

from __future__ import annotations

from typing import Any

import reflex as rx

from console.components.status_badge import STATUS_COLORS, status_color
from console.layout import page
from console.state.shows import ShowsState

# -- Shows ------------------------------------------------------------------------------------


def _invoice_counts(row: Any) -> rx.Component:
    return rx.cond(
        row["invoiced"] != "0",
        rx.hstack(
            *[
                rx.cond(
                    row[status] != "0",
                    rx.badge(row[status], " ", status, color_scheme=color, variant="soft"),
                )
                for status, color in STATUS_COLORS[:5]
            ],
            spacing="1",
            wrap="wrap",
            data_testid="show-invoices",
        ),
        rx.text("none yet", size="2", color_scheme="gray"),
    )


def _show_row(row: Any) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.link(row["title"], href=row["href"], weight="medium")),
        rx.table.cell(rx.badge(row["status"], color_scheme=status_color(row["status"]))),
        rx.table.cell(row["started"]),
        rx.table.cell(row["claims"]),
        rx.table.cell(row["buyers"]),
        rx.table.cell(row["total"]),
        rx.table.cell(
            rx.cond(
                row["unpriced"] != "0",
                rx.badge(row["unpriced"], " without price", color_scheme="orange"),
            )
        ),
        rx.table.cell(_invoice_counts(row)),
        data_testid="show-row",
    )


def shows_page() -> rx.Component:
    headers = ("Show", "Status", "Started", "Claims", "Buyers", "Total", "Prices", "Invoices")
    return page(
        "Shows",
        rx.input(
            placeholder="Search shows",
            value=ShowsState.search,
            on_change=ShowsState.set_search.debounce(300),
            width="20rem",
            data_testid="shows-search",
        ),
        rx.cond(
            ShowsState.rows.length() > 0,
            rx.table.root(
                rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
                rx.table.body(rx.foreach(ShowsState.rows, _show_row)),
                width="100%",
                variant="surface",
                data_testid="shows-table",
            ),
            rx.cond(
                ShowsState.loaded,
                rx.callout(
                    rx.cond(ShowsState.search != "", "No show matches.", "No shows yet."),
                    icon="info",
                    data_testid="shows-table-empty",
                ),
            ),
        ),
    )


# -- a show: the Invoices tab -----------------------------------------------------------------
