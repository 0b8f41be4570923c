"""The list pages: Timeline."""

from __future__ import annotations

import reflex as rx

from console.components.table import data_table
from console.layout import page
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
