"""The Shows page: live and ended shows, newest first, with claims, buyers, value and how their
invoices stand (one grouped query for all the listed shows)."""

from __future__ import annotations

import reflex as rx
from reflex.event import EventSpec

from backend.shows import listing as shows
from console.state.base import SessionState, read
from console.state.formatting import money, when

INVOICE_STATUSES = ("draft", "sent", "paid", "void", "error")


def show_row(summary: shows.ShowSummary) -> dict[str, str]:
    row = {
        "id": str(summary.id),
        "href": f"/shows/{summary.id}",
        "title": summary.title,
        "status": summary.status.value,
        "started": when(summary.started_at),
        "claims": str(summary.claims),
        "buyers": str(summary.buyers),
        "total": money(summary.total_cents, summary.currency),
        "unpriced": str(summary.unpriced_items),
        "invoiced": str(sum(summary.invoices.values())),
    }
    for status in INVOICE_STATUSES:
        row[status] = str(summary.invoices.get(status, 0))
    return row


class ShowsState(SessionState):
    rows: list[dict[str, str]] = []
    search: str = ""
    loaded: bool = False

    @rx.event
    async def load(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        search = self.search
        found = await read(
            self,
            lambda s, a: [
                show_row(row)
                for row in shows.list_shows(s, workspace_id=a.workspace_id, search=search)
            ],
        )
        if found.signed_out:
            return self._login_redirect()
        self.rows = found.get()
        self.loaded = True
        return None

    @rx.event
    async def set_search(self, value: str) -> EventSpec | None:
        self.search = value
        # Returning the handler chains it: the list reloads with the new search.
        return ShowsState.load  # type: ignore[return-value]
