"""A plain table over a list of dicts held in state."""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.vars import Var


def data_table(
    columns: list[tuple[str, str]], rows: Var[list[dict[str, str]]], empty: str, test_id: str
) -> rx.Component:
    """``columns`` pairs a header with the dict key it shows."""
    return rx.cond(
        rows.length() > 0,  # type: ignore[attr-defined]
        rx.table.root(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h, _ in columns])),
            rx.table.body(
                rx.foreach(
                    rows,
                    lambda row: rx.table.row(*[rx.table.cell(row[key]) for _, key in columns]),
                )
            ),
            width="100%",
            variant="surface",
            data_testid=test_id,
        ),
        rx.callout(empty, icon="info", data_testid=f"{test_id}-empty"),
    )


def figure_card(
    label: str, value: Var[Any] | str, test_id: str, hint: Var[Any] | str = ""
) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text(label, size="2", color_scheme="gray"),
            rx.heading(value, size="7", data_testid=test_id),
            rx.text(hint, size="1", color_scheme="gray"),
            spacing="1",
        ),
        min_width="12rem",
    )
