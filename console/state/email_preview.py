"""Settings → E-mail templates: each purpose's repository template rendered with its sample
data (no workspace's data, so viewers preview too)."""

from __future__ import annotations

import reflex as rx

from backend.email import purposes, render
from console.state.base import SessionState

DEFAULT_PURPOSE = "payment_request"


class EmailPreviewState(SessionState):
    purpose: str = DEFAULT_PURPOSE

    @rx.var
    def purpose_names(self) -> list[str]:
        return sorted(purposes.PURPOSES)

    @rx.var
    def group(self) -> str:
        found = purposes.PURPOSES.get(self.purpose)
        return purposes.GROUP_LABELS[found.group] if found else ""

    @rx.var
    def subject(self) -> str:
        return self._rendered().subject

    @rx.var
    def html(self) -> str:
        return self._rendered().html

    @rx.var
    def text(self) -> str:
        return self._rendered().text

    def _rendered(self) -> render.Rendered:
        name = self.purpose if self.purpose in purposes.PURPOSES else DEFAULT_PURPOSE
        return render.preview(name)

    @rx.event
    def set_purpose(self, value: str) -> None:
        self.purpose = value if value in purposes.PURPOSES else DEFAULT_PURPOSE
