"""A show's page: its Invoices tab (the buyer rollup with filter, search, pages and CSV export,
the items table where every price is set and changed, "Generate all" and its progress, each
buyer's invoice actions, live statuses, reconciliation with Stripe) and its claims import from a
CSV file.

Live statuses come from a one-second poll of the invoices changed since the last poll
(``invoice_panel.changes_since``: indexed, usually empty), not from re-reading the rollup: the
page and the figures are read again only when something did change. The poll looks a few
seconds back each time, because a row's ``updated_at`` is set before its transaction commits;
what it saw last time is remembered by signature so that the overlap reports nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar
from urllib.parse import urlsplit

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.orm import Session

from backend.accounts import service as accounts
from backend.connections import provider_status
from backend.db import get_engine, session_scope
from backend.integrations.errors import ProviderError
from backend.invoicing import checkout_links, reconciliation
from backend.invoicing import panel as invoice_panel
from backend.invoicing import service as invoicing
from backend.platform.actors import Actor
from backend.platform.errors import NotAuthenticated, NotFound, ServiceError
from backend.platform.money import MoneyFormat
from backend.shows import claims_import
from console.state.base import SessionState
from console.state.show_views import (
    OVERLAP_SECONDS,
    BuyerView,
    ImportView,
    InvoiceSnap,
    Panel,
    Polled,
    PriceRow,
    View,
    changed_since,
    finding_row,
    fresh,
    import_view,
    paid_message,
    payments,
    read_findings,
    read_panel,
    understand,
)
from models import InvoiceStatus

T = TypeVar("T")


def _refused(exc: ServiceError) -> EventSpec:
    toast: EventSpec = rx.toast.error(str(exc))
    return toast


def as_operator(token: str, work: Callable[[Session, Actor], T]) -> T:
    """Run ``work`` as the operator behind the session token, in one transaction (blocking:
    call it through rx.run_in_thread). The token is resolved again for every call."""
    with session_scope() as session:
        actor = accounts.resolve(session, token=token)
        return work(session, actor)


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
    generating: bool = False
    exporting: bool = False
    unpriced: int = 0
    # The items table. What is typed, what it was understood as and why it cannot be are kept
    # by item id, never by position: a row that moves keeps its own text.
    items: list[PriceRow] = []
    items_page: int = 1
    items_pages: int = 1
    drafts: dict[str, str] = {}
    understood: dict[str, str] = {}
    price_errors: dict[str, str] = {}
    free_id: str = ""  # the item whose price of 0 waits for "free item?"
    free_question: str = ""
    reprice_id: str = ""  # the item whose new price may regenerate invoices
    reprice_title: str = ""
    reprice_count: int = 0
    reprice_text: str = ""
    reprice_paid: str = ""
    rows: list[BuyerView] = []
    matching: int = 0
    status_filter: str = "all"
    search: str = ""
    page: int = 1
    pages: int = 1
    void_id: str = ""
    void_handle: str = ""
    findings: list[dict[str, str]] = []
    checking: bool = False
    checked: bool = False
    fixing: bool = False
    import_file: str = ""
    import_summary: str = ""
    import_errors: list[str] = []
    import_notes: list[str] = []
    import_ready: bool = False
    importing: bool = False
    _import_data: bytes = b""
    _seen: dict[int, str] = {}
    _announced: list[int] = []
    _opened: float = 0.0
    _polled: float = 0.0

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

    @rx.var
    def void_open(self) -> bool:
        return self.void_id != ""

    @rx.var
    def free_open(self) -> bool:
        return self.free_id != ""

    @rx.var
    def reprice_open(self) -> bool:
        return self.reprice_id != ""

    @rx.var
    def fixable_findings(self) -> int:
        return sum(1 for f in self.findings if f["fixable"])

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

    @rx.event
    async def load(self) -> EventSpec | None:
        actor = await self._authenticate()
        if actor is None:
            return self._login_redirect()
        ref = self._show_from_url()
        self.show_ref, self.loaded, self.missing = ref, False, ""
        self.status_filter, self.search, self.page = "all", "", 1
        self.price_errors, self.void_id, self.void_handle = {}, "", ""
        self.items_page, self.drafts, self.understood = 1, {}, {}
        self._close_price_dialogs()
        self.watching, self.generating, self.exporting = False, False, False
        self.checking, self.checked, self.fixing = False, False, False
        self._reset_import()
        if not ref.isdigit():
            self.missing = "There is no such show; pick one from Shows."
            return None
        opened = time.time()
        view = self._view()

        def work() -> tuple[Panel, list[InvoiceSnap], list[dict[str, str]]]:
            with session_scope() as session:
                panel = read_panel(session, actor.workspace_id, view)
                primed = changed_since(
                    session, actor.workspace_id, view.show_id, opened - OVERLAP_SECONDS
                )
                findings = read_findings(session, actor.workspace_id, view.show_id)
                return panel, primed, findings

        try:
            panel, primed, self.findings = await rx.run_in_thread(work)
        except NotFound as exc:
            self.missing = str(exc)
            return None
        self._opened = self._polled = opened
        self._seen = {c.id: c.signature for c in primed}
        self._announced = [c.id for c in primed if c.status == InvoiceStatus.PAID.value]
        self._apply_panel(panel)
        # Generation started elsewhere (another tab, another operator): follow it too.
        self.watching = panel.queued > 0
        self.loaded = True
        return None

    @rx.event
    async def poll(self) -> list[EventSpec] | EventSpec | None:
        """Every second while the Invoices tab is open."""
        if not self.loaded:
            return None
        token, view, seen = self.token, self._view(), dict(self._seen)
        started = time.time()
        since = self._polled - OVERLAP_SECONDS

        def work(session: Session, actor: Actor) -> Polled:
            changed = changed_since(session, actor.workspace_id, view.show_id, since)
            news = fresh(changed, seen)
            panel = read_panel(session, actor.workspace_id, view) if news else None
            return Polled({c.id: c.signature for c in changed}, news, panel)

        try:
            polled = await rx.run_in_thread(lambda: as_operator(token, work))
        except NotAuthenticated:
            return self._login_redirect()
        except NotFound:
            return None  # the show went away; the next load says so
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

    async def _refresh(self) -> list[EventSpec]:
        token, view = self.token, self._view()
        try:
            panel = await rx.run_in_thread(
                lambda: as_operator(token, lambda s, a: read_panel(s, a.workspace_id, view))
            )
        except (NotAuthenticated, NotFound):
            return []
        return self._apply_panel(panel)

    async def _change(
        self,
        change: Callable[[Session, Actor], T],
        done: Callable[[T], str],
        *,
        starts_jobs: bool = False,
    ) -> list[EventSpec] | EventSpec:
        """Run one change as the operator (the service checks the role), then read the panel
        again; a refusal comes back as a toast in the service's words."""
        token = self.token
        try:
            result = await rx.run_in_thread(lambda: as_operator(token, change))
        except NotAuthenticated:
            return self._login_redirect()
        except ServiceError as exc:
            return _refused(exc)
        self.watching = self.watching or starts_jobs
        events = await self._refresh()
        return [rx.toast.success(done(result)), *events]

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

    # -- prices -------------------------------------------------------------------------

    @rx.event
    async def next_items_page(self) -> list[EventSpec]:
        self.items_page = min(self.items_page + 1, self.items_pages)
        return await self._refresh()

    @rx.event
    async def previous_items_page(self) -> list[EventSpec]:
        self.items_page = max(1, self.items_page - 1)
        return await self._refresh()

    def _forget_draft(self, item_id: str) -> None:
        self.drafts = {k: v for k, v in self.drafts.items() if k != item_id}
        self.understood = {k: v for k, v in self.understood.items() if k != item_id}
        self.price_errors = {k: v for k, v in self.price_errors.items() if k != item_id}

    def _close_price_dialogs(self) -> None:
        self.free_id, self.free_question = "", ""
        self.reprice_id, self.reprice_title, self.reprice_count = "", "", 0
        self.reprice_text, self.reprice_paid = "", ""

    @rx.event
    def set_draft(self, item_id: str, text: str) -> None:
        """Each keystroke: what the price typed for this item is understood as ("$12.50"), or
        why it cannot be, before anything is saved. Parsing is pure and quick (no database)."""
        understood, error = understand(text, MoneyFormat(self.locale, self.currency))
        self.drafts = {**self.drafts, item_id: text}
        self.understood = {**self.understood, item_id: understood}
        self.price_errors = {**self.price_errors, item_id: error}

    @rx.event
    async def save_price(self, form: dict[str, str]) -> list[EventSpec] | EventSpec:
        item_id = str(form.get("item_id", ""))
        return await self._save_price(item_id, str(form.get("price", "")), free=False)

    @rx.event
    async def confirm_free(self, item_id: str) -> list[EventSpec] | EventSpec:
        self.free_id, self.free_question = "", ""
        return await self._save_price(item_id, self.drafts.get(item_id, ""), free=True)

    @rx.event
    def set_free_open(self, is_open: bool) -> None:
        if not is_open:
            self.free_id, self.free_question = "", ""

    async def _save_price(
        self, item_id: str, text: str, *, free: bool
    ) -> list[EventSpec] | EventSpec:
        if not item_id.isdigit():
            return []
        token = self.token

        def change(session: Session, actor: Actor) -> invoicing.PriceChange:
            return invoicing.set_item_price(
                session, actor=actor, item_id=int(item_id), price=text, free=free
            )

        try:
            done = await rx.run_in_thread(lambda: as_operator(token, change))
        except NotAuthenticated:
            return self._login_redirect()
        except invoicing.FreeItemUnconfirmed as exc:
            self.free_id, self.free_question = item_id, str(exc)
            return []
        except ServiceError as exc:
            self.price_errors = {**self.price_errors, item_id: str(exc)}
            return []
        self._forget_draft(item_id)
        events: list[EventSpec] = [
            rx.toast.success(f"#{done.number} {done.title} costs {done.price} now.")
        ]
        if done.impact.any:
            self._offer_regeneration(done)
        return [*events, *await self._refresh()]

    def _offer_regeneration(self, done: invoicing.PriceChange) -> None:
        impact = done.impact
        n = len(impact.regenerate)
        shown = ", ".join(f"@{h}" for h in impact.handles[:5]) + (
            ", …" if len(impact.handles) > 5 else ""
        )
        self.reprice_id, self.reprice_count = str(done.item_id), n
        self.reprice_title = f"#{done.number} {done.title}"
        self.reprice_text = (
            f"{n} invoice{'s have' if n != 1 else ' has'} this item at its old price ({shown}). "
            "Regenerating voids each in Stripe (its link stops working) and makes a new "
            f"invoice at {done.price}, sent to the buyer again."
            if n
            else "No unpaid invoice has this item at its old price."
        )
        self.reprice_paid = invoicing.paid_note(impact.paid) if impact.paid else ""

    @rx.event
    async def confirm_reprice(self, item_id: str) -> list[EventSpec] | EventSpec:
        # The id comes with the click: closing the dialog clears it in the state meanwhile.
        self._close_price_dialogs()
        if not item_id.isdigit():
            return []
        return await self._change(
            lambda s, a: invoicing.regenerate_for_item(s, actor=a, item_id=int(item_id)),
            lambda result: result.message,
            starts_jobs=True,
        )

    @rx.event
    def set_reprice_open(self, is_open: bool) -> None:
        if not is_open:
            self._close_price_dialogs()

    # -- generating ---------------------------------------------------------------------

    @rx.event(background=True)
    async def generate_all(self) -> AsyncIterator[EventSpec]:
        async with self:
            if self.generating or not self.loaded:
                return
            self.generating = True
            token, view = self.token, self._view()

        def work(session: Session, actor: Actor) -> tuple[int, Panel]:
            queued = invoicing.generate_all(session, actor=actor, show_id=view.show_id)
            session.flush()
            return queued, read_panel(session, actor.workspace_id, view)

        try:
            queued, panel = await rx.run_in_thread(lambda: as_operator(token, work))
        except NotAuthenticated:
            async with self:
                self.generating = False
            yield self._login_redirect()
            return
        except ServiceError as exc:
            async with self:
                self.generating = False
            yield rx.toast.error(str(exc))
            return
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
        token = self.token
        try:
            outcome = await rx.run_in_thread(
                lambda: as_operator(
                    token,
                    lambda s, a: checkout_links.send_link(s, actor=a, invoice_id=int(invoice_id)),
                )
            )
        except NotAuthenticated:
            return self._login_redirect()
        except ServiceError as exc:
            return _refused(exc)
        toast = rx.toast.success if outcome.sent else rx.toast.warning
        return [toast(outcome.message), *await self._refresh()]

    @rx.event
    async def copy_link(self, invoice_id: str, url: str) -> list[EventSpec] | EventSpec:
        """The link goes to the clipboard at once; the copy is recorded (any role may copy)."""
        token = self.token

        def record(session: Session, actor: Actor) -> None:
            checkout_links.record_copy(session, actor=actor, invoice_id=int(invoice_id))

        try:
            await rx.run_in_thread(lambda: as_operator(token, record))
        except NotAuthenticated:
            return self._login_redirect()
        except ServiceError as exc:
            return _refused(exc)
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
            token, view = self.token, self._view()
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
            text = await rx.run_in_thread(lambda: as_operator(token, work))
        except NotAuthenticated:
            yield self._login_redirect()
            return
        except ServiceError as exc:
            yield rx.toast.error(str(exc))
            return
        finally:
            async with self:
                self.exporting = False
        yield rx.download(
            data=text, filename=f"show-{view.show_id}-invoices.csv", mime_type="text/csv"
        )

    # -- reconciliation with Stripe -----------------------------------------------------

    @rx.event(background=True)
    async def check_stripe(self) -> AsyncIterator[EventSpec]:
        """Compare the show's invoices with Stripe's now (it also runs hourly)."""
        async with self:
            if self.checking or not self.loaded:
                return
            self.checking = True
            token, show_id = self.token, int(self.show_ref)

        def work() -> list[dict[str, str]]:
            with session_scope() as session:
                actor = accounts.resolve(session, token=token)
            # Stripe is called between short transactions (reconciliation takes the engine).
            found = reconciliation.run_for_show(get_engine(), actor=actor, show_id=show_id)
            return [finding_row(f) for f in found]

        try:
            findings = await rx.run_in_thread(work)
        except NotAuthenticated:
            yield self._login_redirect()
            return
        except (ServiceError, ProviderError) as exc:
            yield rx.toast.error(f"The check did not run: {exc}")
            return
        finally:
            async with self:
                self.checking = False
        async with self:
            self.findings, self.checked = findings, True
        if findings:
            yield rx.toast.warning(
                f"{len(findings)} difference{'s' if len(findings) != 1 else ''} with Stripe: "
                "see Reconciliation."
            )
        else:
            yield rx.toast.success("Our invoices match Stripe's.")

    @rx.event(background=True)
    async def fix_findings(self) -> AsyncIterator[EventSpec]:
        """Make our invoices say what Stripe says for every open difference."""
        async with self:
            if self.fixing or not self.loaded:
                return
            self.fixing = True
            token, view = self.token, self._view()

        def work() -> tuple[str, list[dict[str, str]], Panel]:
            with session_scope() as session:
                actor = accounts.resolve(session, token=token)
            result = reconciliation.fix_all(get_engine(), actor=actor, show_id=view.show_id)
            with session_scope() as session:
                findings = read_findings(session, actor.workspace_id, view.show_id)
                return result.message, findings, read_panel(session, actor.workspace_id, view)

        try:
            message, findings, panel = await rx.run_in_thread(work)
        except NotAuthenticated:
            yield self._login_redirect()
            return
        except (ServiceError, ProviderError) as exc:
            yield rx.toast.error(f"Nothing was fixed: {exc}")
            return
        finally:
            async with self:
                self.fixing = False
        async with self:
            self.findings = findings
            self._apply_panel(panel)
        yield rx.toast.success(message)

    # -- claims import ------------------------------------------------------------------

    def _reset_import(self) -> None:
        self.import_file, self.import_summary = "", ""
        self.import_errors, self.import_notes = [], []
        self.import_ready, self.importing = False, False
        self._import_data = b""

    @rx.event
    async def preview_import(self, files: list[rx.UploadFile]) -> EventSpec | None:
        """A chosen CSV file: what importing it would do, and every bad row. Changes nothing."""
        self._reset_import()
        if not files or not self.loaded:
            return None
        upload = files[0]
        data = await upload.read()
        token, show_id = self.token, int(self.show_ref)

        def work(session: Session, actor: Actor) -> ImportView:
            return import_view(
                claims_import.preview(
                    session, workspace_id=actor.workspace_id, show_id=show_id, text=data
                )
            )

        self.import_file = upload.name or "claims.csv"
        try:
            view = await rx.run_in_thread(lambda: as_operator(token, work))
        except NotAuthenticated:
            return self._login_redirect()
        except ServiceError as exc:
            self.import_summary, self.import_errors = "This file cannot be imported.", [str(exc)]
            return None
        self.import_summary, self.import_errors = view.summary, view.errors
        self.import_notes, self.import_ready = view.notes, view.ready
        self._import_data = data if view.ready else b""
        return None

    @rx.event
    def cancel_import(self) -> None:
        self._reset_import()

    @rx.event(background=True)
    async def apply_import(self) -> AsyncIterator[EventSpec]:
        async with self:
            if self.importing or not self._import_data:
                return
            self.importing = True
            token, view, data = self.token, self._view(), self._import_data

        def work(session: Session, actor: Actor) -> tuple[str, Panel]:
            result = claims_import.apply(session, actor=actor, show_id=view.show_id, text=data)
            session.flush()
            return result.message, read_panel(session, actor.workspace_id, view)

        try:
            message, panel = await rx.run_in_thread(lambda: as_operator(token, work))
        except NotAuthenticated:
            yield self._login_redirect()
            return
        except ServiceError as exc:
            async with self:
                self.importing = False
            yield rx.toast.error(str(exc))
            return
        async with self:
            self._reset_import()
            self._apply_panel(panel)
        yield rx.toast.success(message)
