"""The one money parser (backend/services/money.py) and the workspace's money format: amounts
read as the workspace's locale writes them, ambiguous ones refused with what to type, the
currency's decimals respected; the console's price editor (invoicing.set_item_price) reading
through it, with "free item?" for 0; and who may change the format."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.accounts import money_settings
from backend.invoicing import service as invoicing
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, NotFound, PermissionDenied
from backend.platform.money import MoneyFormat
from models import AuditLog, Role, Show, ShowItem, Workspace
from tests import factories
from tests.support.shows import MadeShow, make_show

US = MoneyFormat("en_US", "usd")
DE = MoneyFormat("de_DE", "eur")
FR = MoneyFormat("fr_FR", "eur")
JP = MoneyFormat("ja_JP", "jpy")


@pytest.mark.parametrize(
    ("fmt", "text", "minor"),
    [
        (US, "12.50", 1250),
        (US, "$12.50", 1250),
        (US, " 12.50 USD ", 1250),
        (US, "1,250", 125000),  # valid en_US grouping: one thousand two hundred fifty
        (US, "1,250.5", 125050),
        (US, "0", 0),
        (DE, "12,50", 1250),
        (DE, "1.250", 125000),
        (DE, "12,50 €", 1250),
        (FR, "1 250,50", 125050),  # typed with a plain space; CLDR groups with U+202F
        (JP, "1250", 1250),
        (JP, "¥1,250", 1250),
    ],
)
def test_amounts_are_read_as_the_locale_writes_them(
    fmt: MoneyFormat, text: str, minor: int
) -> None:
    assert fmt.parse(text) == minor


@pytest.mark.parametrize(
    ("fmt", "text", "message"),
    [
        (
            US,
            "12,50",
            "“12,50” is ambiguous: English (United States) writes prices like 1,234.56. "
            "Type 12.50 for $12.50 or 1,250.00 for $1,250.00.",
        ),
        (
            DE,
            "12.50",
            "“12.50” is ambiguous: German (Germany) writes prices like 1.234,56. "
            "Type 12,50 for 12,50\xa0€ or 1.250,00 for 1.250,00\xa0€.",
        ),
        (US, "-3", "A price cannot be negative (“-3”)"),
        (US, "12.505", "Prices in US dollars have at most 2 decimals (“12.505” has more"),
        (JP, "12.5", "Prices in Japanese yen have no decimals: type a whole amount"),
        (US, "twelve", "“twelve” is not a price. Type an amount like 12.50"),
        (US, "1.5e3", "“1.5e3” is not a price"),
        (US, "NaN", "“NaN” is not a price"),
        (US, "€4", "“€4” is not a price"),
        (US, "", "Type a price, like 12.50."),
        (US, "200000", "A price is at most $100,000.00"),
        # Longer than Decimal's precision: refused in words, not an InvalidOperation crash.
        (US, "1" * 30, "A price is at most $100,000.00"),
        (US, "1" * 40 + ".5", "A price is at most $100,000.00"),
        (DE, "1" * 40 + ",5", "A price is at most 100.000,00"),
    ],
)
def test_ambiguous_negative_too_precise_and_garbage_are_refused_saying_what_to_type(
    fmt: MoneyFormat, text: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        fmt.parse(text)
    assert str(refused.value).startswith(message)
    assert refused.value.field == "price"


def test_amounts_are_shown_as_the_locale_writes_them() -> None:
    assert [f.format(125050) for f in (US, DE)] == ["$1,250.50", "1.250,50\xa0€"]
    assert JP.format(1250) == "￥1,250"


@pytest.fixture
def show(engine: Engine) -> MadeShow:
    with Session(engine) as session:
        ws = factories.workspace(session, slug="shop")
        session.commit()
        workspace_id = ws.id
    return make_show(engine, workspace_id=workspace_id, buyers=1, unpriced=(1,))


def _owner(show: MadeShow, role: Role = Role.OWNER) -> Actor:
    return Actor(operator_id=1, workspace_id=show.workspace_id, role=role)


def _price(engine: Engine, item_id: int) -> int | None:
    with Session(engine) as session:
        return session.get_one(ShowItem, item_id).price_cents


def test_the_price_editor_reads_prices_in_the_workspace_locale(
    engine: Engine, show: MadeShow
) -> None:
    item = show.item_ids[0]
    with Session(engine) as session:
        # A new workspace writes as in the US, in dollars.
        assert money_settings.of_workspace(session, workspace_id=show.workspace_id) == US
        with pytest.raises(InvalidInput, match="ambiguous"):
            invoicing.set_item_price(session, actor=_owner(show), item_id=item, price="12,50")
        assert session.get_one(ShowItem, item).price_cents is None
        done = invoicing.set_item_price(session, actor=_owner(show), item_id=item, price="1,250")
        assert (done.price_cents, done.price) == (125000, "$1,250.00")
        session.commit()

    with Session(engine) as session:
        money_settings.change(session, actor=_owner(show), locale="de_DE", currency="eur")
        session.commit()
    with Session(engine) as session:
        # The show keeps its currency (its invoices are in it); the locale is the workspace's.
        done = invoicing.set_item_price(session, actor=_owner(show), item_id=item, price="12,50")
        assert (done.previous_cents, done.price_cents, done.price) == (125000, 1250, "12,50\xa0$")
        session.commit()
    assert _price(engine, item) == 1250


def test_zero_asks_whether_the_item_is_free(engine: Engine, show: MadeShow) -> None:
    item = show.item_ids[0]
    with Session(engine) as session:
        with pytest.raises(invoicing.FreeItemUnconfirmed, match="0 makes #1 Item 1 free"):
            invoicing.set_item_price(session, actor=_owner(show), item_id=item, price="0")
        assert session.get_one(ShowItem, item).price_cents is None
        done = invoicing.set_item_price(
            session, actor=_owner(show), item_id=item, price="0.00", free=True
        )
        assert (done.price_cents, done.price) == (0, "$0.00")
        session.commit()
    assert _price(engine, item) == 0


def test_prices_are_changed_only_by_owners_and_admins_of_the_items_workspace(
    engine: Engine, show: MadeShow
) -> None:
    with Session(engine) as session:
        with pytest.raises(PermissionDenied):
            invoicing.set_item_price(
                session, actor=_owner(show, Role.VIEWER), item_id=show.item_ids[1], price="3"
            )
        other = factories.workspace(session, slug="other")
        stranger = Actor(operator_id=9, workspace_id=other.id, role=Role.OWNER)
        with pytest.raises(NotFound):
            invoicing.set_item_price(session, actor=stranger, item_id=show.item_ids[1], price="3")


def test_the_money_format_is_checked_audited_and_changed_by_owners_and_admins(
    engine: Engine, show: MadeShow
) -> None:
    with Session(engine) as session:
        with pytest.raises(PermissionDenied):
            money_settings.change(
                session, actor=_owner(show, Role.VIEWER), locale="de_DE", currency="eur"
            )
        with pytest.raises(InvalidInput, match="not a locale this console knows"):
            money_settings.change(session, actor=_owner(show), locale="xx_YY", currency="usd")
        with pytest.raises(InvalidInput, match="with a country"):
            money_settings.change(session, actor=_owner(show), locale="de", currency="eur")
        with pytest.raises(InvalidInput, match="not a currency invoices can be made in"):
            money_settings.change(session, actor=_owner(show), locale="de_DE", currency="zzz")
        saved = money_settings.change(
            session, actor=_owner(show, Role.ADMIN), locale="ja-JP", currency="JPY"
        )
        session.commit()
    assert saved == JP
    with Session(engine) as session:
        workspace = session.get_one(Workspace, show.workspace_id)
        assert (workspace.locale, workspace.currency) == ("ja_JP", "jpy")
        audit = session.scalars(
            select(AuditLog).where(AuditLog.action == "workspace.money_format")
        ).one()
        assert audit.details == {"from": ["en_US", "usd"], "to": ["ja_JP", "jpy"]}
        # A yen show's prices have no decimals.
        session.get_one(Show, show.id).currency = "jpy"
        session.commit()
    with Session(engine) as session:
        with pytest.raises(InvalidInput, match="no decimals"):
            invoicing.set_item_price(
                session, actor=_owner(show), item_id=show.item_ids[0], price="12.5"
            )
        done = invoicing.set_item_price(
            session, actor=_owner(show), item_id=show.item_ids[0], price="1,250"
        )
        assert (done.price_cents, done.price) == (1250, "￥1,250")


def test_settings_offers_locales_by_name_with_how_they_write_numbers() -> None:
    locales = {c.value: c.label for c in money_settings.locale_choices()}
    assert locales["en_US"] == "English (United States) — 1,234.56"
    assert locales["de_DE"] == "German (Germany) — 1.234,56"
    currencies = {c.value: c.label for c in money_settings.currency_choices()}
    assert currencies["jpy"] == "JPY — Japanese Yen"
