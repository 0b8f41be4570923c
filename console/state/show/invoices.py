"""A show's Invoices tab (console/pages/show_invoices.py): the buyer rollup with filter, search
and pages, "Generate all" and its progress, each buyer's invoice actions, checkout links, the
CSV export and the live statuses.

Live statuses come from a one-second poll of the invoices changed since the last poll
(``invoice_panel.changes_since``: indexed, usually empty), not from re-reading the rollup: the
page and the figures are read again only when something did change. The poll looks a few
seconds back each time, because a row's ``updated_at`` is set before its transaction commits;
what it saw last time is remembered by signature so that the overlap reports nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.orm import Session

from backend.invoicing import checkout_links
from backend.invoicing import panel as invoice_panel
from backend.invoicing import service as invoicing
from backend.platform.actors import Actor
from console.state.base import change, read
from console.state.show.base import Opened, ShowState, refused
from console.state.show.views import (
    OVERLAP_SECONDS,
    Panel,
    Polled,
    changed_since,
    fresh,
    paid_message,
    payments,
    read_panel,
)
from models import InvoiceStatus


class InvoicesState(ShowState):
    generating: bool = False
    exporting: bool = False
    void_id: str = ""
    void_handle: str = ""
    _seen: dict[int, str] = {}
    _announced: list[int] = []
    _opened: float = 0.0
    _polled: float = 0.0

    @rx.var
    def void_open(self) -> bool:
        return self.void_id != ""

    def _on_open(self, opened: Opened | None) -> None:
        self.void_id, self.void_handle = "", ""
        self.generating, self.exporting = False, False
        if opened is None:
            return
        self._opened = self._polled = opened.at
        self._seen = {c.id: c.signature for c in opened.primed}
        self._announced = [c.id for c in opened.primed if c.status == InvoiceStatus.PAID.value]

    @rx.event
    async def poll(self) -> list[EventSpec] | EventSpec | None:
        """Every second while the Invoices tab is open."""
        if not self.loaded:
            return None
        view, seen = self._view(), dict(self._seen)
        started = time.time()
        since = self._polled - OVERLAP_SECONDS

        def work(session: Session, actor: Actor) -> Polled:
            changed = changed_since(session, actor.workspace_id, view.show_id, since)
            news = fresh(changed, seen)
            panel = read_panel(session, actor.workspace_id, view) if news else None
            return Polled({c.id: c.signature for c in changed}, news, panel)

        found = await read(self, work)
        if found.signed_out:
            return self._login_redirect()
        if not found.ok:
            return None  # the show went away; the next load says so
        polled = found.get()
        self._seen, self._polled = polled.seen, started
        if polled.panel is None:
            return None
        events = self._apply_panel(polled.panel)
        announced = set(self._announced)
        for paid in payments(polled.news, announced, self._opened):
            announced.add(paid.id)
            events.append(rx.toast.success(paid_message(paid)))
        self._announced = sorted(announced)
        return events

    # -- filters and pages --------------------------------------------------------------

    @rx.event
    async def set_status_filter(self, value: str | list[str]) -> list[EventSpec]:
        chosen = value if isinstance(value, str) else (value[0] if value else "all")
        self.status_filter, self.page = chosen or "all", 1
        return await self._refresh()

    @rx.event
    async def set_search(self, value: str) -> list[EventSpec]:
        self.search, self.page = value, 1
        return await self._refresh()

    @rx.event
    async def next_page(self) -> list[EventSpec]:
        self.page = min(self.page + 1, self.pages)
        return await self._refresh()

    @rx.event
    async def previous_page(self) -> list[EventSpec]:
        self.page = max(1, self.page - 1)
        return await self._refresh()

    # -- generating ---------------------------------------------------------------------

    @rx.event(background=True)
    async def generate_all(self) -> AsyncIterator[EventSpec]:
        async with self:
            if self.generating or not self.loaded:
                return
            self.generating = True
            view = self._view()

        def work(session: Session, actor: Actor) -> tuple[int, Panel]:
            queued = invoicing.generate_all(session, actor=actor, show_id=view.show_id)
            session.flush()
            return queued, read_panel(session, actor.workspace_id, view)

        outcome = await change(self, work)
        if not outcome.ok:
            async with self:
                self.generating = False
            yield self._login_redirect() if outcome.signed_out else refused(outcome.refused or "")
            return
        queued, panel = outcome.get()
        async with self:
            self.generating = False
            self.watching = queued > 0
            self._apply_panel(panel)
        if queued:
            yield rx.toast.info(f"Generating {queued} invoice(s) in Stripe…")
        else:
            yield rx.toast.info("Every buyer already has an invoice: nothing new to generate.")

    @rx.event
    async def generate_one(self, pid: str) -> list[EventSpec] | EventSpec:
        show_id = int(self.show_ref)
        return await self._change(
            lambda s, a: invoicing.generate_one(s, actor=a, show_id=show_id, platform_user_id=pid),
            lambda made: "Generating the invoice…" if made else "This buyer has an invoice.",
            starts_jobs=True,
        )

    @rx.event
    async def retry(self, invoice_id: str) -> list[EventSpec] | EventSpec:
        return await self._change(
            lambda s, a: invoicing.retry(s, actor=a, invoice_id=int(invoice_id)),
            lambda _: "Trying again in Stripe…",
            starts_jobs=True,
        )

    @rx.event
    async def regenerate(self, invoice_id: str) -> list[EventSpec] | EventSpec:
        return await self._change(
            lambda s, a: invoicing.regenerate(s, actor=a, invoice_id=int(invoice_id)),
            lambda _: "Generating a new invoice…",
            starts_jobs=True,
        )

    # -- void, with a confirmation ------------------------------------------------------

    @rx.event
    def ask_void(self, invoice_id: str, handle: str) -> None:
        self.void_id, self.void_handle = invoice_id, handle

    @rx.event
    def cancel_void(self) -> None:
        self.void_id, self.void_handle = "", ""

    @rx.event
    def set_void_open(self, is_open: bool) -> None:
        if not is_open:
            self.void_id, self.void_handle = "", ""

    @rx.event
    async def confirm_void(self, invoice_id: str, handle: str) -> list[EventSpec] | EventSpec:
        # The ids come with the click: closing the dialog clears them in the state meanwhile.
        self.void_id, self.void_handle = "", ""
        if not invoice_id:
            return []
        return await self._change(
            lambda s, a: invoicing.void(s, actor=a, invoice_id=int(invoice_id)),
            lambda _: f"Voiding @{handle}'s invoice in Stripe…",
        )

    # -- checkout links -----------------------------------------------------------------

    @rx.event
    async def send_link(self, invoice_id: str) -> list[EventSpec] | EventSpec:
        """A link on its way is a success; one that was not sent is a warning that says why
        and what to do (never a green toast for something that did not happen)."""
        outcome = await change(
            self, lambda s, a: checkout_links.send_link(s, actor=a, invoice_id=int(invoice_id))
        )
        if outcome.signed_out:
            return self._login_redirect()
        if outcome.refused is not None:
            return refused(outcome.refused)
        sent = outcome.get()
        toast = rx.toast.success if sent.sent else rx.toast.warning
        return [toast(sent.message), *await self._refresh()]

    @rx.event
    async def copy_link(self, invoice_id: str, url: str) -> list[EventSpec] | EventSpec:
        """The link goes to the clipboard at once; the copy is recorded (any role may copy)."""

        def record(session: Session, actor: Actor) -> None:
            checkout_links.record_copy(session, actor=actor, invoice_id=int(invoice_id))

        outcome = await change(self, record)
        if outcome.signed_out:
            return self._login_redirect()
        if outcome.refused is not None:
            return refused(outcome.refused)
        return [
            rx.set_clipboard(url),
            rx.toast.success("Checkout link copied: paste it to the buyer."),
        ]

    # -- export -------------------------------------------------------------------------

    @rx.event(background=True)
    async def export_csv(self) -> AsyncIterator[EventSpec]:
        async with self:
            if self.exporting or not self.loaded:
                return
            self.exporting = True
            view = self._view()
        status = "" if view.status == "all" else view.status

        def work(session: Session, actor: Actor) -> str:
            rows = invoice_panel.all_rows(
                session,
                workspace_id=actor.workspace_id,
                show_id=view.show_id,
                status=status,
                search=view.search,
            )
            return invoice_panel.export_csv(rows)

        try:
            found = await read(self, work)
        finally:
            async with self:
                self.exporting = False
        if found.signed_out:
            yield self._login_redirect()
            return
        if found.refused is not None:
            yield refused(found.refused)
            return
        yield rx.download(
            data=found.get(), filename=f"show-{view.show_id}-invoices.csv", mime_type="text/csv"
        )
