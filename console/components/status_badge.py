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


# A lead's and an e-mail's status (the Leads and lead pages): green is good news, red trouble.
LEAD_STATUS_COLORS = (
    ("new", "blue"),
    ("contacted", "cyan"),
    ("proposal_viewed", "violet"),
    ("engaged", "green"),
    ("won", "green"),
    ("email_invalid", "red"),
    ("unsubscribed", "orange"),
    ("lost", "gray"),
)
EMAIL_STATUS_COLORS = (
    ("queued", "gray"),
    ("sent", "blue"),
    ("processed", "blue"),
    ("delivered", "cyan"),
    ("opened", "violet"),
    ("clicked", "green"),
    ("deferred", "amber"),
    ("skipped", "amber"),
    ("unknown", "amber"),
    ("failed", "red"),
    ("bounced", "red"),
    ("dropped", "red"),
    ("spam_report", "red"),
    ("unsubscribed", "orange"),
)


def lead_status_color(status: Any) -> Any:
    return rx.match(status, *LEAD_STATUS_COLORS, "gray")


def email_status_color(status: Any) -> Any:
    return rx.match(status, *EMAIL_STATUS_COLORS, "gray")
