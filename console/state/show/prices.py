"""A show's items table, where every price is set and changed (console/pages/show_prices.py):
what each typed price is understood as before it is saved, "a free item?" for a price of 0, and
the offer to regenerate the unpaid invoices that have an item at its old price."""

from __future__ import annotations

import reflex as rx
from reflex.event import EventSpec

from backend.invoicing import service as invoicing
from backend.platform.money import MoneyFormat
from console.state.base import change
from console.state.show.base import Opened, ShowState
from console.state.show.views import understand


class PricesState(ShowState):
    # What is typed, what it was understood as and why it cannot be are kept by item id, never
    # by position: a row that moves keeps its own text.
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

    @rx.var
    def free_open(self) -> bool:
        return self.free_id != ""

    @rx.var
    def reprice_open(self) -> bool:
        return self.reprice_id != ""

    def _on_open(self, opened: Opened | None) -> None:
        self.drafts, self.understood, self.price_errors = {}, {}, {}
        self._close_price_dialogs()

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
        outcome = await change(
            self,
            lambda s, a: invoicing.set_item_price(
                s, actor=a, item_id=int(item_id), price=text, free=free
            ),
        )
        if outcome.signed_out:
            return self._login_redirect()
        if isinstance(outcome.error, invoicing.FreeItemUnconfirmed):
            self.free_id, self.free_question = item_id, str(outcome.error)
            return []
        if outcome.refused is not None:
            self.price_errors = {**self.price_errors, item_id: outcome.refused}
            return []
        done = outcome.get()
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
