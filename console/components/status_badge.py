"""The colour of a status badge (invoices and shows), the same everywhere."""

from __future__ import annotations

from typing import Any

import reflex as rx

STATUS_COLORS = (
    ("paid", "green"),
    ("sent", "blue"),
    ("draft", "gray"),
    ("void", "gray"),
    ("error", "red"),
    ("live", "red"),
    ("ended", "gray"),
)


def status_color(status: Any) -> Any:
    return rx.match(status, *STATUS_COLORS, "gray")
