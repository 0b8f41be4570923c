"""The CSV import of claims on the show page: a good file, bad rows and what each says, semicolons
and a byte-order mark, files too large, importing the same claims twice, invoiced buyers, and
who may import."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.accounts import money_settings
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, NotFound, PermissionDenied
from backend.shows import claims_import
from models import AuditLog, Buyer, Claim, Invoice, InvoiceStatus, Role, Show, ShowItem
from tests import factories
from tests.support.shows import MadeShow, make_show


@pytest.fixture
def show(engine: Engine) -> MadeShow:
    """Items 1-10 priced (n x $5), one buyer (b0000) with three claims."""
    with Session(engine) as session:
        ws = factories.workspace(session, slug="shop")
        session.commit()
        workspace_id = ws.id
    return make_show(engine, workspace_id=workspace_id, buyers=1)


def _owner(show: MadeShow) -> Actor:
    return Actor(operator_id=1, workspace_id=show.workspace_id, role=Role.OWNER)


def _preview(engine: Engine, show: MadeShow, text: str | bytes) -> claims_import.ImportPreview:
    with Session(engine) as session:
        return claims_import.preview(
            session, workspace_id=show.workspace_id, show_id=show.id, text=text
        )


def _apply(engine: Engine, show: MadeShow, text: str | bytes) -> claims_import.ImportResult:
    with Session(engine) as session:
        result = claims_import.apply(session, actor=_owner(show), show_id=show.id, text=text)
        session.commit()
    return result


def _claims(engine: Engine, show: MadeShow) -> list[tuple[str, int, int, str]]:
    with Session(engine) as session:
        return sorted(
            (pid, number, quantity, handle)
            for pid, number, quantity, handle in session.execute(
                select(Claim.platform_user_id, ShowItem.number, Claim.quantity, Claim.buyer_handle)
                .join(ShowItem, ShowItem.id == Claim.item_id)
                .where(Claim.show_id == show.id)
            )
        )


GOOD = """item_number,item_title,price,platform_user_id,handle,quantity,email
3,,20.00,fb_alice,@alice,2,alice@example.com
11,Blue scarf,$12.50,fb_alice,alice,,
11,,12.50,{pid},b0000-renamed,1,new@example.com
"""


def test_a_good_file_adds_items_buyers_and_claims(engine: Engine, show: MadeShow) -> None:
    text = GOOD.format(pid=show.buyers[0])
    before = _claims(engine, show)
    preview = _preview(engine, show, text)
    assert preview.ok and preview.errors == []
    assert [(r.line, r.item_number, r.quantity) for r in preview.rows] == [
        (2, 3, 2),
        (3, 11, 1),
        (4, 11, 1),
    ]
    assert (preview.new_items, preview.new_buyers, preview.repeated_rows) == (1, 1, 0)
    assert preview.price_conflicts == [
        "Item #3: the file says $20.00, the show has $15.00; the show's price is kept (change "
        "it on the Invoices tab if the file is right)."
    ]
    assert _claims(engine, show) == before  # a preview changes nothing

    result = _apply(engine, show, text)
    assert (result.claims_added, result.items_created, result.buyers_created) == (3, 1, 1)
    assert (result.buyers_updated, result.skipped_repeats, result.invoiced_rows) == (1, 0, 0)
    assert result.message.startswith("Imported 3 claims (1 new item, 1 new buyer). Item #3:")
    added = sorted(set(_claims(engine, show)) - set(before))
    assert added == sorted(
        [
            ("fb_alice", 3, 2, "alice"),
            ("fb_alice", 11, 1, "alice"),
            (show.buyers[0], 11, 1, "b0000-renamed"),
        ]
    )
    with Session(engine) as session:
        items = {i.number: i for i in session.scalars(select(ShowItem))}
        assert (items[11].title, items[11].price_cents) == ("Blue scarf", 1250)
        assert items[3].price_cents == 1500  # the show's price is kept
        buyers = {b.platform_user_id: b for b in session.scalars(select(Buyer))}
        assert (buyers["fb_alice"].handle, buyers["fb_alice"].email) == (
            "alice",
            "alice@example.com",
        )
        renamed = buyers[show.buyers[0]]
        assert (renamed.handle, renamed.email) == ("b0000-renamed", "new@example.com")
        audit = session.scalars(select(AuditLog).where(AuditLog.action == "claims.import")).one()
        assert audit.target == f"show:{show.id}" and audit.details["claims"] == 3
        assert audit.details["fingerprint"] == preview.fingerprint


BAD = """item_number,item_title,platform_user_id,handle,quantity,price,email
1,,fb_a,a,2,,
x1,,fb_b,b,1,,
2,,,c,1,,
2,,fb_d,,1,,
2,,fb_e,e,two,,
2,,fb_f,f,0,,
2,,fb_g,g,1,ten,
2,,fb_h,h,1,,bob@
99,,fb_i,i,1,,
2,,fb_j,j,1,5.00,
3,,fb_k,k,1,7.00,,extra
12,Hat,fb_l,l,1,4.00,
12,,fb_m,m,1,4.50,

2,,fb_n,n,1,200000,
"""


def test_bad_rows_are_listed_each_with_what_to_fix(engine: Engine, show: MadeShow) -> None:
    preview = _preview(engine, show, BAD)
    assert [str(e) for e in preview.errors] == [
        "line 3: item_number 'x1' is not a whole number",
        "line 4: platform_user_id is empty (the buyer's id on the selling platform)",
        "line 5: handle is empty (the buyer's name as shown in the show)",
        "line 6: quantity 'two' is not a whole number",
        "line 7: quantity 0 must be between 1 and 1000",
        "line 8: price: “ten” is not a price. Type an amount like 12.50 (English (United "
        "States) writes 1,234.56). Or leave it empty to price the item later.",
        "line 9: email 'bob@' does not look like an email address",
        "line 10: item 99 is not in this show yet: give it an item_title",
        "line 12: has 8 values but the header names 7 columns (a value that contains “,” must "
        "be in double quotes)",
        "line 14: item 12 costs $4.00 on line 13 but $4.50 here; give each item one price",
        "line 16: price: A price is at most $100,000.00 (“200000” is more): check the number of "
        "zeros. Or leave it empty to price the item later.",
    ]
    assert not preview.ok and preview.bad_lines == 11
    assert [r.line for r in preview.rows] == [2, 11, 13]
    assert preview.price_conflicts[0].startswith(
        "Item #2: the file says $5.00, the show has $10.00"
    )

    with pytest.raises(InvalidInput) as refused:
        _apply(engine, show, BAD)
    assert str(refused.value) == (
        "11 rows have problems: fix the 11 rows listed and import again. Nothing was imported."
    )
    assert len(_claims(engine, show)) == 3


def test_platform_ids_hold_only_the_characters_ids_are_made_of(
    engine: Engine, show: MadeShow
) -> None:
    text = (
        "item_number,platform_user_id,handle\n"
        "1,fb_123,ok\n"
        "1,\"x' OR metadata['platform_user_id']:'fb_1\",crafted\n"
        "1,tt:user.name-2@shop,fine\n"
    )
    preview = _preview(engine, show, text)
    assert [str(e) for e in preview.errors] == [
        "line 3: platform_user_id 'x' OR metadata['platform_user_id']:'fb_1' may hold only "
        "letters, digits and . _ - : @ (the buyer's id on the selling platform, as the "
        "platform exports it)"
    ]
    assert [r.platform_user_id for r in preview.rows] == ["fb_123", "tt:user.name-2@shop"]


def _set_format(engine: Engine, show: MadeShow, locale: str, currency: str = "usd") -> None:
    with Session(engine) as session:
        money_settings.change(session, actor=_owner(show), locale=locale, currency=currency)
        session.commit()


SEMICOLONS = (
    "\ufeffItem Number;Handle;PLATFORM_USER_ID;Price;Item Title;Notes\r\n"
    '42;zoe;fb_zoe;12,50;"Hat; wool";first\r\n'
    "43;zoe;fb_zoe;1.250,00;Coat;\r\n"
).encode()


def test_semicolons_a_byte_order_mark_and_decimal_commas(engine: Engine, show: MadeShow) -> None:
    # A German workspace writes 12,50 and 1.250,00: the file is read as it writes them.
    _set_format(engine, show, "de_DE")
    preview = _preview(engine, show, SEMICOLONS)
    assert preview.errors == [] and preview.ignored_columns == ["Notes"]
    assert [(r.item_number, r.item_title, r.price_cents) for r in preview.rows] == [
        (42, "Hat; wool", 1250),
        (43, "Coat", 125000),
    ]
    assert preview.notes == ["Columns not imported: Notes."]
    assert _apply(engine, show, SEMICOLONS).claims_added == 2
    with Session(engine) as session:
        hat = session.scalars(select(ShowItem).where(ShowItem.number == 42)).one()
        assert (hat.title, hat.price_cents) == ("Hat; wool", 1250)


def test_prices_are_read_in_the_workspace_locale_and_ambiguous_ones_refused(
    engine: Engine, show: MadeShow
) -> None:
    # The same file in an en_US workspace: "12,50" could be 12.50 or 1,250; "1.250,00" is not
    # how en_US writes a number. Each row says what to type; nothing is imported.
    preview = _preview(engine, show, SEMICOLONS)
    assert [str(e) for e in preview.errors] == [
        "line 2: price: “12,50” is ambiguous: English (United States) writes prices like "
        "1,234.56. Type 12.50 for $12.50 or 1,250.00 for $1,250.00. Or leave it empty to price "
        "the item later.",
        "line 3: price: “1.250,00” is not how English (United States) writes a price "
        "(1,234.56). Type 1,250.00 for $1,250.00. Or leave it empty to price the item later.",
    ]
    with pytest.raises(InvalidInput, match="2 rows have problems"):
        _apply(engine, show, SEMICOLONS)

    # en_US grouping is read as grouping (never as a decimal comma), the symbol is dropped,
    # and more decimals than the currency has, negative amounts and other currencies are refused.
    header = "item_number,item_title,platform_user_id,handle,price\n"
    rows = (
        '50,Lamp,fb_u,u,"1,250"\n'
        "51,Rug,fb_u,u,$12.50\n"
        "52,Vase,fb_u,u,12.505\n"
        "53,Bowl,fb_u,u,-3\n"
        "54,Cup,fb_u,u,€4\n"
        "55,Pin,fb_u,u,0\n"
    )
    preview = _preview(engine, show, header + rows)
    assert [(r.item_number, r.price_cents) for r in preview.rows] == [
        (50, 125000),
        (51, 1250),
        (55, 0),
    ]
    assert [(e.line, str(e).split(". Or leave")[0]) for e in preview.errors] == [
        (
            4,
            "line 4: price: Prices in US dollars have at most 2 decimals (“12.505” has more; "
            "English (United States) writes 1,234.56)",
        ),
        (
            5,
            "line 5: price: A price cannot be negative (“-3”). Type the amount the buyer pays, "
            "like 12.50",
        ),
        (
            6,
            "line 6: price: “€4” is not a price. Type an amount like 12.50 (English (United "
            "States) writes 1,234.56)",
        ),
    ]
    # A price of 0 is allowed in a file, and said out loud before importing.
    good = _preview(engine, show, header + "55,Pin,fb_u,u,0\n")
    assert good.ok and good.notes[0].startswith("Item #55 is priced 0 in the file: it will be free")

    # A yen workspace's show: whole amounts only, in yen.
    with Session(engine) as session:
        session.get_one(Show, show.id).currency = "jpy"
        session.commit()
    _set_format(engine, show, "ja_JP", "jpy")
    yen = _preview(engine, show, header + '60,Fan,fb_y,y,"1,250"\n61,Bag,fb_y,y,12.5\n')
    assert [(r.item_number, r.price_cents) for r in yen.rows] == [(60, 1250)]
    assert [str(e).split(" (")[0] for e in yen.errors] == [
        "line 3: price: Prices in Japanese yen have no decimals: type a whole amount"
    ]


def test_files_that_cannot_be_read_are_refused_with_the_reason(
    engine: Engine, show: MadeShow
) -> None:
    header = "item_number,item_title,platform_user_id,handle\n"
    big = header + "1,Item,fb_big,big\n" * 120_000  # > 2 MiB
    with pytest.raises(InvalidInput, match=r"limit is 2 MiB\. Split it"):
        _preview(engine, show, big)
    long = header + "".join(f"1,,fb_{n},h{n}\n" for n in range(10_001))
    with pytest.raises(InvalidInput, match=r"more than 10,000 rows; import at most 10,000"):
        _preview(engine, show, long)
    with pytest.raises(InvalidInput, match="handle is missing"):
        _preview(engine, show, "item_number,platform_user_id,user\n1,fb,x\n")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        _preview(engine, show, header.encode() + "1,Caf\xe9,fb,h\n".encode("latin-1"))
    with pytest.raises(InvalidInput, match="no claims under it"):
        _preview(engine, show, header)
    with pytest.raises(InvalidInput, match="empty"):
        _preview(engine, show, "\n\n")


def test_importing_the_same_claims_twice_is_refused(engine: Engine, show: MadeShow) -> None:
    text = GOOD.format(pid=show.buyers[0])
    _apply(engine, show, text)
    after_first = _claims(engine, show)

    reordered = "\n".join([text.splitlines()[0], *reversed(text.splitlines()[1:])])
    with pytest.raises(InvalidInput, match=r"already imported into this show on .* double them"):
        _apply(engine, show, reordered)
    assert _claims(engine, show) == after_first

    # A newer export of the same show: only what is new is added.
    newer = text + "5,,,fb_alice,alice,1,\n"
    preview = _preview(engine, show, newer)
    assert (preview.repeated_rows, preview.to_import) == (3, 1)
    assert "3 rows of the file are already claims in this show: they will be skipped." in (
        preview.notes
    )
    result = _apply(engine, show, newer)
    assert (result.claims_added, result.skipped_repeats) == (1, 3)
    assert len(_claims(engine, show)) == len(after_first) + 1

    # The claims already in the show, exported elsewhere and imported: nothing to add.
    pid = show.buyers[0]
    existing = "item_number,platform_user_id,handle,quantity\n" + "".join(
        f"{number},{pid},b0000,{quantity}\n"
        for p, number, quantity, _h in _claims(engine, show)
        if p == pid
    )
    with pytest.raises(InvalidInput, match="Every row of this file is already a claim"):
        _apply(engine, show, existing)


def test_rows_of_buyers_already_invoiced_are_imported_with_a_warning(
    engine: Engine, show: MadeShow
) -> None:
    with Session(engine) as session:
        session.add(
            Invoice(
                workspace_id=show.workspace_id,
                show_id=show.id,
                provider="stripe",
                external_id="in_1",
                buyer_handle="b0000",
                buyer_platform_id=show.buyers[0],
                status=InvoiceStatus.SENT,
                line_items=[],
            )
        )
        session.commit()
    text = f"item_number,platform_user_id,handle\n7,{show.buyers[0]},b0000\n8,fb_new,new\n"
    note = (
        "1 row belongs to buyers already invoiced in this show (@b0000): their invoices do not "
        "include these claims; void and regenerate those invoices to include them."
    )
    assert _preview(engine, show, text).notes == [note]
    result = _apply(engine, show, text)
    assert result.claims_added == 2 and result.invoiced_rows == 1
    assert result.message.endswith(note)


def test_a_viewer_cannot_import_and_other_workspaces_shows_are_invisible(
    engine: Engine, show: MadeShow
) -> None:
    text = "item_number,platform_user_id,handle\n1,fb_v,v\n"
    viewer = Actor(operator_id=2, workspace_id=show.workspace_id, role=Role.VIEWER)
    stranger = Actor(operator_id=3, workspace_id=show.workspace_id + 1000, role=Role.OWNER)
    with Session(engine) as session:
        with pytest.raises(PermissionDenied, match="import claims"):
            claims_import.apply(session, actor=viewer, show_id=show.id, text=text)
        with pytest.raises(NotFound):
            claims_import.apply(session, actor=stranger, show_id=show.id, text=text)
        with pytest.raises(NotFound):
            claims_import.preview(
                session, workspace_id=stranger.workspace_id, show_id=show.id, text=text
            )
        assert session.scalar(select(func.count()).select_from(Claim)) == 3
