"""Amounts of money as a workspace writes them: one parser for every price a person types or
imports (the console's price editor, the claims CSV), and the formatter that shows them back.

Babel reads the number the way the workspace's locale writes it, strictly: in en_US "1,250" is
1250 and "12,50" is refused as ambiguous (a misplaced thousands separator, or a decimal comma?),
in de_DE "12,50" is 12.50. An amount becomes an integer of the currency's minor units, with no
more decimals than the currency has (JPY has none). Pure functions: nothing here reads the
database (see money_settings for the workspace's format).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, localcontext

from babel import Locale, UnknownLocaleError
from babel.numbers import (
    NumberFormatError,
    format_currency,
    format_decimal,
    get_currency_name,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    parse_decimal,
)

from backend.platform.errors import InvalidInput

DEFAULT_LOCALE = "en_US"
DEFAULT_CURRENCY = "usd"
MAX_MINOR_UNITS = 10_000_000  # $100,000.00 (¥10,000,000): a typo guard, not a business rule

# What Settings offers. Currencies whose decimals Babel (CLDR) and Stripe count alike, so that an
# amount in minor units means the same to both.
LOCALES = (
    "en_US",
    "en_GB",
    "en_CA",
    "en_AU",
    "en_IE",
    "de_DE",
    "de_AT",
    "de_CH",
    "fr_FR",
    "fr_CA",
    "es_ES",
    "es_MX",
    "it_IT",
    "nl_NL",
    "pt_BR",
    "pt_PT",
    "sv_SE",
    "da_DK",
    "nb_NO",
    "pl_PL",
    "ja_JP",
)
CURRENCIES = (
    "usd",
    "eur",
    "gbp",
    "cad",
    "aud",
    "nzd",
    "chf",
    "sek",
    "nok",
    "dkk",
    "pln",
    "czk",
    "mxn",
    "brl",
    "sgd",
    "hkd",
    "jpy",
)
_SPACES = (" ", "\u00a0", "\u202f")  # what a person types, and what CLDR groups with
_MINUS = ("-", "\u2212", "(")


@dataclass(frozen=True, slots=True)
class MoneyFormat:
    """How amounts are read and written: a Babel locale ("en_US") and an ISO currency code,
    lower-case as Stripe and our tables spell it ("usd")."""

    locale: str = DEFAULT_LOCALE
    currency: str = DEFAULT_CURRENCY

    @property
    def code(self) -> str:
        return self.currency.upper()

    @property
    def digits(self) -> int:
        """The currency's decimals: 2 for USD, 0 for JPY."""
        return int(get_currency_precision(self.code))

    @property
    def language(self) -> str:
        """The locale's name in English, for messages ("English (United States)")."""
        return str(Locale.parse(self.locale).get_display_name("en"))

    def format(self, minor: int) -> str:
        """12.50 dollars (1250) as the locale writes it: "$12.50", "12,50 $"."""
        return str(format_currency(to_major(minor, self.digits), self.code, locale=self.locale))

    def plain(self, amount: Decimal) -> str:
        """An amount as the operator would type it, without a symbol: "1,250.00", "1.250,00"."""
        pattern = "#,##0" + ("." + "0" * self.digits if self.digits else "")
        return str(format_decimal(amount, format=pattern, locale=self.locale))

    @property
    def example(self) -> str:
        """How the locale writes a larger amount ("1,234.56"), for messages."""
        return self.plain(Decimal("1234.56") if self.digits else Decimal(1234))

    @property
    def sample(self) -> str:
        """A price to suggest typing ("12.50", "12,50", "1250")."""
        return self.plain(Decimal("12.5") if self.digits else Decimal(1250))

    def parse(self, text: str) -> int:
        return parse_amount(text, self)


def to_major(minor: int, digits: int) -> Decimal:
    return Decimal(minor).scaleb(-digits)


def check_locale(value: str) -> str:
    """The locale in Babel's spelling ("de_DE"), or InvalidInput saying what to choose."""
    try:
        locale = Locale.parse(value.strip().replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        raise InvalidInput(
            f"“{value}” is not a locale this console knows; choose one like en_US or de_DE.",
            field="locale",
        ) from None
    if not locale.territory:
        raise InvalidInput(
            f"Choose a locale with a country, like {locale.language}_"
            f"{'US' if locale.language == 'en' else locale.language.upper()}: "
            "the country decides how numbers are written.",
            field="locale",
        )
    return str(locale)


def check_currency(value: str) -> str:
    code = value.strip().lower()
    if code not in CURRENCIES:
        raise InvalidInput(
            f"“{value}” is not a currency invoices can be made in here; choose one of "
            + ", ".join(c.upper() for c in CURRENCIES)
            + ".",
            field="currency",
        )
    return code


def _strip_currency(text: str, fmt: MoneyFormat) -> str:
    """Drop the workspace currency's symbol or code where a person puts one ("$12.50",
    "12,50 €", "12.50 USD"); another currency's is left, and refused as not a number."""
    marks = {
        str(get_currency_symbol(fmt.code, locale=fmt.locale)),
        str(get_currency_symbol(fmt.code, locale="en")),
        fmt.code,
    }
    for mark in sorted(marks, key=len, reverse=True):
        if text.upper().startswith(mark.upper()):
            return text[len(mark) :].strip()
        if text.upper().endswith(mark.upper()):
            return text[: -len(mark)].strip()
    return text


def _not_a_price(text: str, fmt: MoneyFormat) -> InvalidInput:
    return InvalidInput(
        f"“{text}” is not a price. Type an amount like {fmt.sample}"
        f" ({fmt.language} writes {fmt.example}).",
        field="price",
    )


def _readings(number: str, fmt: MoneyFormat) -> list[Decimal]:
    """What an ambiguous number could have meant: written the other way round (decimal and
    grouping separators swapped, as another locale writes them), or its separators as grouping."""
    group, decimal = get_group_symbol(fmt.locale), get_decimal_symbol(fmt.locale)
    candidates = []
    if len(group) == len(decimal) == 1:
        candidates.append(number.translate(str.maketrans(group + decimal, decimal + group)))
    if decimal not in number:
        candidates.append(number.replace(group, ""))
    found: list[Decimal] = []
    for candidate in candidates:
        try:
            value = parse_decimal(candidate, locale=fmt.locale, strict=True)
        except NumberFormatError:
            continue
        if _fits(value, fmt.digits) and value not in found:
            found.append(value)
    return found


def _fits(value: Decimal, digits: int) -> bool:
    # Its own precision: a 30-digit number would overflow the default context's 28 digits
    # (InvalidOperation) before the size check could refuse it in words.
    with localcontext() as context:
        context.prec = max(len(value.as_tuple().digits) + digits + 2, 28)
        return value == value.quantize(Decimal(1).scaleb(-digits))


def parse_amount(text: str, fmt: MoneyFormat) -> int:
    """What the operator typed, in minor units of ``fmt.currency``; InvalidInput (a message
    that says what to type instead) for anything ambiguous, negative, too precise or not a
    number. 0 is a valid amount: callers decide whether a free item needs confirming."""
    shown = text.strip()
    if not shown:
        raise InvalidInput(f"Type a price, like {fmt.sample}.", field="price")
    number = _strip_currency(shown, fmt)
    if number.startswith(_MINUS) or number.endswith("-"):
        raise InvalidInput(
            f"A price cannot be negative (“{shown}”). Type the amount the buyer pays, like "
            f"{fmt.sample}.",
            field="price",
        )
    group, decimal = get_group_symbol(fmt.locale), get_decimal_symbol(fmt.locale)
    if group in _SPACES:  # "1 250,50" typed with a plain space: the locale's grouping
        number = re.sub("[ \u00a0\u202f]", group, number)
    allowed = set("0123456789") | {group, decimal}
    if not number or any(c not in allowed for c in number) or not any(c.isdigit() for c in number):
        raise _not_a_price(shown, fmt)
    if sum(c.isdigit() for c in number) > _MAX_DIGITS:
        # Refused before Babel reads it: its strict check overflows Decimal's precision on
        # numbers this long, and no price has this many digits.
        raise _too_much(shown, fmt)
    try:
        value = parse_decimal(number, locale=fmt.locale, strict=True)
    except NumberFormatError:
        readings = _readings(number, fmt)
        if not readings:
            raise _not_a_price(shown, fmt) from None
        options = " or ".join(
            f"{fmt.plain(r)} for {fmt.format(int(r.scaleb(fmt.digits)))}" for r in readings
        )
        said = (
            f"“{shown}” is ambiguous: {fmt.language} writes prices like {fmt.example}."
            if len(readings) > 1
            else f"“{shown}” is not how {fmt.language} writes a price ({fmt.example})."
        )
        raise InvalidInput(f"{said} Type {options}.", field="price") from None
    if not _fits(value, fmt.digits):
        name = get_currency_name(fmt.code, count=2, locale="en")
        if fmt.digits == 0:
            said = f"Prices in {name} have no decimals: type a whole amount"
        else:
            said = f"Prices in {name} have at most {fmt.digits} decimals"
        raise InvalidInput(
            f"{said} (“{shown}” has more; {fmt.language} writes {fmt.example}).", field="price"
        )
    minor = int(value.scaleb(fmt.digits))
    if minor > MAX_MINOR_UNITS:
        raise _too_much(shown, fmt)
    return minor


# Digits in a typed price, decimals included: far above MAX_MINOR_UNITS's, far below
# Decimal's default precision (28).
_MAX_DIGITS = 18


def _too_much(shown: str, fmt: MoneyFormat) -> InvalidInput:
    return InvalidInput(
        f"A price is at most {fmt.format(MAX_MINOR_UNITS)} (“{shown}” is more): check "
        "the number of zeros.",
        field="price",
    )
