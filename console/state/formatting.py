"""Turning domain values into the strings the console shows."""

from __future__ import annotations

import datetime as dt

from backend.platform.money import DEFAULT_LOCALE, MoneyFormat


def money(minor: int, currency: str = "usd", locale: str = DEFAULT_LOCALE) -> str:
    """An amount in the currency's minor units, as the locale writes it (Babel): "$12.50",
    "12,50 €", "¥1,250" (JPY has no decimals)."""
    return MoneyFormat(locale, currency.lower()).format(minor)


def when(moment: dt.datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")
