"""The CSV import of claims on the show page: a good file, bad rows and what each says, semicolons
and a byte-order mark, files too large, importing the same claims twice, invoiced buyers, and
who may import."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.services import claims_import
from backend.services.actors import Actor
from backend.services.errors import InvalidInput, NotFound, PermissionDenied
from models import AuditLog, Buyer, Claim, Invoice, InvoiceStatus, Role, ShowItem
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
        "Item #3: the file says 20.00, the show has 15.00; the show's price is kept (change "
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
        "line 8: price 'ten' is not an amount; write it like 12.50 (or leave it empty to "
        "price the item later)",
        "line 9: email 'bob@' does not look like an email address",
        "line 10: item 99 is not in this show yet: give it an item_title",
        "line 12: has 8 values but the header names 7 columns (a value that contains “,” must "
        "be in double quotes)",
        "line 14: item 12 costs 4.00 on line 13 but 4.50 here; give each item one price",
        "line 16: price '200000' is over 100,000.00",
    ]
    assert not preview.ok and preview.bad_lines == 11
    assert [r.line for r in preview.rows] == [2, 11, 13]
    assert preview.price_conflicts[0].startswith("Item #2: the file says 5.00, the show has 10.00")

    with pytest.raises(InvalidInput) as refused:
        _apply(engine, show, BAD)
    assert str(refused.value) == (
        "11 rows have problems: fix the 11 rows listed and import again. Nothing was imported."
    )
    assert len(_claims(engine, show)) == 3


def test_semicolons_a_byte_order_mark_and_decimal_commas(engine: Engine, show: MadeShow) -> None:
    text = (
        "\ufeffItem Number;Handle;PLATFORM_USER_ID;Price;Item Title;Notes\r\n"
        '42;zoe;fb_zoe;12,50;"Hat; wool";first\r\n'
        "43;zoe;fb_zoe;1,250.00;Coat;\r\n"
    ).encode()
    preview = _preview(engine, show, text)
    assert preview.errors == [] and preview.ignored_columns == ["Notes"]
    assert [(r.item_number, r.item_title, r.price_cents) for r in preview.rows] == [
        (42, "Hat; wool", 1250),
        (43, "Coat", 125000),
    ]
    assert preview.notes == ["Columns not imported: Notes."]
    assert _apply(engine, show, text).claims_added == 2
    with Session(engine) as session:
        hat = session.scalars(select(ShowItem).where(ShowItem.number == 42)).one()
        assert (hat.title, hat.price_cents) == ("Hat; wool", 1250)


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
