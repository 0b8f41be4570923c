"""Settings: the workspace's name, money format and plan, and who the operator is in it."""

from __future__ import annotations

import reflex as rx
from reflex.event import EventSpec

from backend.accounts import money_settings, plans
from backend.accounts import service as accounts
from backend.config import get_settings
from backend.platform.money import MoneyFormat
from console.state.base import SessionState, change, change_in_steps, read
from models import Plan


class SettingsState(SessionState):
    name_draft: str = ""
    message: str = ""
    error: str = ""

    @rx.event
    async def load(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        self.name_draft = self.workspace_name
        self.message = self.error = ""
        return None

    @rx.event
    def set_name_draft(self, value: str) -> None:
        self.name_draft = value

    @rx.event
    async def save_name(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        name = self.name_draft
        done = await change(
            self, lambda s, a: accounts.rename_workspace(s, actor=a, name=name).name
        )
        if done.signed_out:
            return self._login_redirect()
        if done.refused is not None:
            self.error, self.message = done.refused, ""
            return None
        self.workspace_name = done.get()
        self.message, self.error = "Saved.", ""
        toast: EventSpec = rx.toast.success("Workspace renamed")
        return toast


class PlanState(SessionState):
    """Settings → Plan: upgrade through the platform's own Stripe Checkout."""

    plan_error: str = ""

    @rx.var
    def is_owner(self) -> bool:
        return self.role == "owner"

    @rx.event
    async def upgrade(self, plan: str) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        console_url = get_settings().public_console_url
        # Two calls to Stripe: the service holds no transaction while they run.
        done = await change_in_steps(
            self,
            lambda e, a: plans.start_upgrade(
                e,
                actor=a,
                plan=Plan(plan),
                success_url=f"{console_url}/integrations?upgraded={plan}",
                cancel_url=f"{console_url}/settings?cancelled=1",
            ),
        )
        if done.signed_out:
            return self._login_redirect()
        if done.refused is not None:
            self.plan_error = done.refused
            return None
        self.plan_error = ""
        return rx.redirect(done.get())


class MoneyFormatState(SessionState):
    """Settings → Money: the locale prices are typed and shown in, and new shows' currency."""

    locale_draft: str = ""
    currency_draft: str = ""
    locales: list[dict[str, str]] = [
        {"value": c.value, "label": c.label} for c in money_settings.locale_choices()
    ]
    currencies: list[dict[str, str]] = [
        {"value": c.value, "label": c.label} for c in money_settings.currency_choices()
    ]
    money_error: str = ""

    @rx.var
    def money_example(self) -> str:
        """How a price will look with the chosen format ("$1,234.56")."""
        if not self.locale_draft or not self.currency_draft:
            return ""
        try:
            return MoneyFormat(self.locale_draft, self.currency_draft).format(123456)
        except ValueError:
            return ""

    @rx.event
    async def load(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        found = await read(
            self, lambda s, a: money_settings.of_workspace(s, workspace_id=a.workspace_id)
        )
        if found.signed_out:
            return self._login_redirect()
        current = found.get()
        self.locale_draft, self.currency_draft = current.locale, current.currency
        self.money_error = ""
        return None

    @rx.event
    def set_locale_draft(self, value: str) -> None:
        self.locale_draft = value

    @rx.event
    def set_currency_draft(self, value: str) -> None:
        self.currency_draft = value

    @rx.event
    async def save_money(self) -> EventSpec | None:
        locale, currency = self.locale_draft, self.currency_draft
        outcome = await change(
            self,
            lambda session, actor: money_settings.change(
                session, actor=actor, locale=locale, currency=currency
            ),
        )
        if outcome.signed_out:
            return self._login_redirect()
        if outcome.refused is not None or outcome.value is None:
            self.money_error = outcome.refused or ""
            return None
        self.money_error = ""
        saved = outcome.value
        toast: EventSpec = rx.toast.success(
            f"Prices are now typed and shown as {saved.format(123456)}; new shows are in "
            f"{saved.code}."
        )
        return toast
