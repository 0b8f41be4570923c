"""A show's page: the show, its figures and the panel every tab draws from.

The panel (figures, progress, the buyer rollup's page, the items table's page) is read in one
go, in one session, whichever tab asked: so what it holds, and which rows the operator is looking
at (filter, search, pages), live here. Each tab is a substate of ShowState that keeps only what
it uses itself (console/state/show/{invoices,prices,reconciliation,claims}.py, mirroring
console/pages/show_*.py) and reaches this one through ``self``.

Opening the page reads the panel, the invoices changed just before it (for the Invoices tab's
live poll) and the open reconciliation findings in that same session, then hands each tab what
it needs through ``_on_open``: the tabs subclass this state, so it finds them as its substates
instead of importing them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.orm import Session

from backend.connections import provider_status
from backend.platform.actors import Actor
from console.state.base import SessionState, change, read
from console.state.show.views import (
    OVERLAP_SECONDS,
    BuyerView,
    InvoiceSnap,
    Panel,
    PriceRow,
    View,
    changed_since,
    read_findings,
    read_panel,
)

T = TypeVar("T")


def refused(reason: str) -> EventSpec:
    """A refusal, in the service's words, as the show page shows it."""
    toast: EventSpec = rx.toast.error(reason)
    return toast


@dataclass(frozen=True)
class Opened:
    """What the page read when it opened, for the tabs to start from."""

    at: float
    primed: list[InvoiceSnap]
    findings: list[dict[str, str]]


class ShowState(SessionState):
    show_ref: str = ""  # the show's id, from the URL
    loaded: bool = False
    missing: str = ""
    title: str = ""
    show_status: str = ""
    started: str = ""
    currency: str = "usd"
    locale: str = "en_US"
    stripe_state: str = "ready"
    stripe_message: str = ""
    buyers: int = 0
    claims: int = 0
    total: str = ""
    not_invoiced: int = 0
    counts: dict[str, int] = {}
    queued: int = 0
    done: int = 0
    failed: int = 0
    watching: bool = False  # after "Generate all", until every job has finished
    unpriced: int = 0
    # The items table's page (the Prices card edits it).
    items: list[PriceRow] = []
    items_page: int = 1
    items_pages: int = 1
    # The buyer rollup's page and which rows it shows (the Invoices tab filters it).
    rows: list[BuyerView] = []
    matching: int = 0
    status_filter: str = "all"
    search: str = ""
    page: int = 1
    pages: int = 1

    @rx.var
    def stripe_ready(self) -> bool:
        """Work may be queued for Stripe: it is connected (answering or not: jobs wait)."""
        return self.stripe_state in (provider_status.READY, provider_status.UNAVAILABLE)

    @rx.var
    def stripe_unavailable(self) -> bool:
        return self.stripe_state == provider_status.UNAVAILABLE

    @rx.var
    def progress_total(self) -> int:
        return self.queued + self.done + self.failed

    @rx.var
    def progress_percent(self) -> int:
        total = self.queued + self.done + self.failed
        return 0 if total == 0 else round(100 * (self.done + self.failed) / total)

    @rx.var
    def progress_finished(self) -> bool:
        return self.queued == 0

    def _view(self) -> View:
        return View(int(self.show_ref), self.status_filter, self.search, self.page, self.items_page)

    def _apply_panel(self, panel: Panel) -> list[EventSpec]:
        """Show what was read; announce the end of a generation the page was watching."""
        self.title, self.show_status, self.started = panel.title, panel.show_status, panel.started
        self.currency, self.locale = panel.currency, panel.locale
        self.stripe_state, self.stripe_message = panel.stripe_state, panel.stripe_message
        self.buyers, self.claims, self.total = panel.buyers, panel.claims, panel.total
        self.not_invoiced, self.counts = panel.not_invoiced, panel.counts
        self.queued, self.done, self.failed = panel.queued, panel.done, panel.failed
        self.unpriced, self.items = panel.unpriced, panel.items
        self.items_page, self.items_pages = panel.items_page, panel.items_pages
        self.rows, self.matching = panel.rows, panel.matching
        self.page, self.pages = panel.page, panel.pages
        if self.watching and panel.queued == 0:
            self.watching = False
            if panel.failed:
                return [
                    rx.toast.warning(
                        f"Invoices finished: {panel.done} done, {panel.failed} failed. "
                        "Failed rows say why and offer Retry."
                    )
                ]
            return [rx.toast.success(f"Invoices finished: {panel.done} done.")]
        return []

    def _show_from_url(self) -> str:
        path = urlsplit(str(self.router.url)).path.rstrip("/")
        return path.rsplit("/", 1)[-1]

    def _on_open(self, opened: Opened | None) -> None:
        """A tab starts afresh (None: the page shows no show). Each tab overrides it."""

    @rx.event
    async def load(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        ref = self._show_from_url()
        self.show_ref, self.loaded, self.missing = ref, False, ""
        self.status_filter, self.search, self.page, self.items_page = "all", "", 1, 1
        self.watching = False
        opened: Opened | None = None
        if not ref.isdigit():
            self.missing = "There is no such show; pick one from Shows."
        else:
            at = time.time()
            view = self._view()

            def work(session: Session, actor: Actor) -> tuple[Panel, Opened]:
                w, show_id = actor.workspace_id, view.show_id
                return read_panel(session, w, view), Opened(
                    at,
                    changed_since(session, w, show_id, at - OVERLAP_SECONDS),
                    read_findings(session, w, show_id),
                )

            found = await read(self, work)
            if found.signed_out:
                return self._login_redirect()
            if found.refused is not None:
                self.missing = found.refused
            else:
                panel, opened = found.get()
                self._apply_panel(panel)
                # Generation started elsewhere (another tab, another operator): follow it too.
                self.watching = panel.queued > 0
                self.loaded = True
        for tab in ShowState.get_substates():
            state = await self.get_state(tab)
            if isinstance(state, ShowState):
                state._on_open(opened)
        return None

    async def _refresh(self) -> list[EventSpec]:
        """Read the panel again, as the operator now looks at it."""
        view = self._view()
        found = await read(self, lambda s, a: read_panel(s, a.workspace_id, view))
        if not found.ok:
            return []  # signed out or the show went away: the next load says so
        return self._apply_panel(found.get())

    async def _change(
        self,
        work: Callable[[Session, Actor], T],
        done: Callable[[T], str],
        *,
        starts_jobs: bool = False,
    ) -> list[EventSpec] | EventSpec:
        """Run one change as the operator (the service checks the role), then read the panel
        again; a refusal comes back as a toast in the service's words."""
        outcome = await change(self, work)
        if outcome.signed_out:
            return self._login_redirect()
        if outcome.refused is not None:
            return refused(outcome.refused)
        self.watching = self.watching or starts_jobs
        events = await self._refresh()
        return [rx.toast.success(done(outcome.get())), *events]
