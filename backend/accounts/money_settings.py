"""A workspace's money format (Settings → Money): the locale its prices are typed and shown in,
and the currency of its new shows. A show keeps the currency it was created in, because its
invoices are in it; its prices are read in the workspace's locale and the show's currency.

Tested in tests/platform/test_money.py and tests/shows/test_claims_import.py."""

from __future__ import annotations

from dataclasses import dataclass

from babel import Locale
from babel.numbers import get_currency_name
from sqlalchemy.orm import Session

from backend.platform import audit
from backend.platform.actors import Actor
from backend.platform.money import CURRENCIES, LOCALES, MoneyFormat, check_currency, check_locale
from models import Show, Workspace


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str


def of_workspace(session: Session, *, workspace_id: int) -> MoneyFormat:
    workspace = session.get_one(Workspace, workspace_id)
    return MoneyFormat(workspace.locale, workspace.currency)


def for_show(session: Session, *, workspace_id: int, show: Show) -> MoneyFormat:
    """How the prices of one show are read and written (the caller checked the workspace)."""
    workspace = session.get_one(Workspace, workspace_id)
    return MoneyFormat(workspace.locale, show.currency or workspace.currency)


def change(session: Session, *, actor: Actor, locale: str, currency: str) -> MoneyFormat:
    """Set the workspace's locale and currency (owners and admins)."""
    actor.require_change("change the workspace's money format")
    new = MoneyFormat(check_locale(locale), check_currency(currency))
    workspace = session.get_one(Workspace, actor.workspace_id)
    old = MoneyFormat(workspace.locale, workspace.currency)
    if new == old:
        return new
    workspace.locale, workspace.currency = new.locale, new.currency
    audit.record(
        session,
        actor=actor,
        action="workspace.money_format",
        target=f"workspace:{workspace.id}",
        details={"from": [old.locale, old.currency], "to": [new.locale, new.currency]},
    )
    return new


def locale_choices() -> list[Choice]:
    """What Settings offers: each locale by name, with how it writes an amount."""
    return [
        Choice(code, f"{Locale.parse(code).get_display_name('en')} — {MoneyFormat(code).example}")
        for code in LOCALES
    ]


def currency_choices() -> list[Choice]:
    return [
        Choice(code, f"{code.upper()} — {get_currency_name(code.upper(), locale='en')}")
        for code in CURRENCIES
    ]
