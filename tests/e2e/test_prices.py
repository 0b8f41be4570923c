"""Issue 11, prices: Settings shows the workspace's money format; in an en_US workspace "12,50"
is refused as ambiguous with what to type, "0" asks "free item?", "12.50" shows "$12.50"
understood before it is saved; every item's price stays editable in the items table, and
changing the price of an item already invoiced offers to regenerate the unpaid invoices (a paid
one never is, and the dialog says so)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.demo import seed as demo
from models import Buyer, Claim, Invoice, InvoiceStatus, Show, ShowItem, ShowStatus, Workspace
from tests.e2e.conftest import Console, log_in

pytestmark = pytest.mark.e2e

TITLE = "Price Check Pop-up"


@dataclass(frozen=True)
class PriceShow:
    id: int
    unpriced: int  # item ids
    scarf: int


@pytest.fixture
def price_show(console: Console) -> Iterator[PriceShow]:
    """A show of its own in the live seller's workspace (en_US, USD), removed afterwards so
    that the other browser tests find the demo data as it was. @price_one claims both items,
    @price_two only the scarf."""
    pids = ("fb_price_check_1", "fb_price_check_2")
    with Session(console.engine) as session:
        workspace = session.scalars(
            select(Workspace).where(Workspace.slug == demo.LIVE_SELLER)
        ).one()
        assert (workspace.locale, workspace.currency) == ("en_US", "usd")
        show = Show(workspace_id=workspace.id, title=TITLE, status=ShowStatus.ENDED, currency="usd")
        session.add(show)
        session.flush()
        scrunchie = ShowItem(
            workspace_id=workspace.id, show_id=show.id, number=1, title="Velvet scrunchie"
        )
        scarf = ShowItem(
            workspace_id=workspace.id,
            show_id=show.id,
            number=2,
            title="Wool scarf",
            price_cents=2000,
        )
        session.add_all([scrunchie, scarf])
        session.flush()
        for pid, handle in zip(pids, ("price_one", "price_two"), strict=True):
            session.add(Buyer(workspace_id=workspace.id, platform_user_id=pid, handle=handle))
        claims = [(pids[0], scrunchie), (pids[0], scarf), (pids[1], scarf)]
        for pid, item in claims:
            session.add(
                Claim(
                    workspace_id=workspace.id,
                    show_id=show.id,
                    item_id=item.id,
                    platform_user_id=pid,
                    buyer_handle="price_one" if pid == pids[0] else "price_two",
                )
            )
        session.commit()
        made = PriceShow(show.id, scrunchie.id, scarf.id)
    yield made
    with Session(console.engine) as session:
        # The show goes with its items and claims. Its invoices stay, detached (show_id is SET
        # NULL), as they would in the product: an invoice id is part of its job's idempotency
        # key, and SQLite hands a deleted row's id to the next insert.
        session.execute(delete(Claim).where(Claim.show_id == made.id))
        session.execute(delete(ShowItem).where(ShowItem.show_id == made.id))
        session.execute(delete(Show).where(Show.id == made.id))
        session.execute(delete(Buyer).where(Buyer.platform_user_id.in_(pids)))
        session.commit()


def _price(console: Console, item_id: int) -> int | None:
    with Session(console.engine) as session:
        return session.get_one(ShowItem, item_id).price_cents


def test_prices_are_read_as_the_workspace_writes_them_and_changes_offer_regeneration(
    page: Page, console: Console, price_show: PriceShow
) -> None:
    log_in(page, "ops@lakeside.example", demo.DEMO_PASSWORD)
    # Settings → Money shows how this workspace writes prices.
    page.get_by_test_id("nav-settings").click()
    expect(page.get_by_test_id("money-locale")).to_contain_text("English (United States)")
    expect(page.get_by_test_id("money-currency")).to_contain_text("USD")
    expect(page.get_by_test_id("money-example")).to_have_text("$1,234.56")
    expect(page.get_by_test_id("money-save")).to_be_enabled()

    page.goto(f"/shows/{price_show.id}")
    expect(page.get_by_test_id("show-title")).to_have_text(TITLE)
    scrunchie = page.locator('[data-testid="item-row"][data-number="1"]')
    scarf = page.locator('[data-testid="item-row"][data-number="2"]')
    expect(scrunchie).to_have_attribute("data-priced", "no")
    expect(scarf.get_by_test_id("item-price")).to_have_text("$20.00")

    # A decimal comma in an en_US workspace: refused, saying what to type, and nothing saved.
    scrunchie.get_by_test_id("price-input").fill("12,50")
    error = scrunchie.get_by_test_id("price-error")
    expect(error).to_contain_text("ambiguous")
    expect(error).to_contain_text("Type 12.50 for $12.50 or 1,250.00 for $1,250.00")
    scrunchie.get_by_test_id("price-save").click()
    expect(error).to_contain_text("ambiguous")
    assert _price(console, price_show.unpriced) is None

    # 0 asks first; "No" leaves the item unpriced.
    scrunchie.get_by_test_id("price-input").fill("0")
    expect(scrunchie.get_by_test_id("price-understood")).to_contain_text("free item?")
    scrunchie.get_by_test_id("price-save").click()
    expect(page.get_by_role("alertdialog")).to_contain_text("free")
    page.get_by_role("button", name="No, type a price").click()
    expect(page.get_by_role("alertdialog")).to_have_count(0)
    assert _price(console, price_show.unpriced) is None

    # What it understood, before saving; then saved, and the input is empty again.
    scrunchie.get_by_test_id("price-input").fill("12.50")
    expect(scrunchie.get_by_test_id("price-understood")).to_have_text("Understood: $12.50")
    expect(scrunchie.get_by_test_id("price-error")).to_have_count(0)
    scrunchie.get_by_test_id("price-save").click()
    expect(scrunchie.get_by_test_id("item-price")).to_have_text("$12.50")
    expect(scrunchie).to_have_attribute("data-priced", "yes")
    expect(scrunchie.get_by_test_id("price-input")).to_have_value("")
    expect(scarf.get_by_test_id("price-input")).to_have_value("")
    assert _price(console, price_show.unpriced) == 1250

    # Invoice both buyers; @price_two pays their hosted invoice in the sandbox.
    page.get_by_test_id("generate-all").click()
    expect(page.get_by_test_id("progress-state")).to_have_text("finished", timeout=180_000)
    one = page.locator('[data-testid="buyer-row"][data-handle="price_one"]')
    two = page.locator('[data-testid="buyer-row"][data-handle="price_two"]')
    expect(one.get_by_test_id("invoice-status")).to_have_text("Sent")
    expect(two.get_by_test_id("invoice-status")).to_have_text("Sent")
    first_link = one.get_by_test_id("view-on-stripe").get_attribute("href")
    with page.context.expect_page() as opened:
        two.get_by_test_id("view-on-stripe").click()
    hosted = opened.value
    hosted.get_by_test_id("pay").click()
    expect(hosted.get_by_test_id("status")).to_have_text("paid")
    hosted.close()
    expect(two.get_by_test_id("invoice-status")).to_have_text("Paid")

    # The scarf's price, already on both invoices, changes in the table: regeneration is
    # offered for @price_one's unpaid invoice, and the dialog says @price_two's paid one stays.
    scarf.get_by_test_id("price-input").fill("25")
    expect(scarf.get_by_test_id("price-understood")).to_have_text("Understood: $25.00")
    scarf.get_by_test_id("price-save").click()
    expect(scarf.get_by_test_id("item-price")).to_have_text("$25.00")
    dialog = page.get_by_role("alertdialog")
    expect(dialog.get_by_test_id("reprice-text")).to_contain_text("1 invoice has")
    expect(dialog.get_by_test_id("reprice-text")).to_contain_text("@price_one")
    expect(dialog.get_by_test_id("reprice-text")).to_contain_text("$25.00")
    expect(dialog.get_by_test_id("reprice-paid")).to_contain_text("never regenerated (@price_two)")
    dialog.get_by_test_id("confirm-reprice").click()
    expect(page.get_by_text("Regenerating 1 invoice")).to_be_visible()

    # @price_one's invoice is voided and made again at the new price; the paid one is kept.
    expect(one.get_by_test_id("view-on-stripe")).not_to_have_attribute(
        "href", first_link or "", timeout=120_000
    )
    expect(one.get_by_test_id("invoice-status")).to_have_text("Sent", timeout=120_000)
    expect(one.get_by_test_id("subtotal")).to_have_text("$37.50")
    expect(two.get_by_test_id("invoice-status")).to_have_text("Paid")
    with Session(console.engine) as session:
        invoices = session.scalars(
            select(Invoice)
            .where(Invoice.show_id == price_show.id)
            .order_by(Invoice.buyer_handle, Invoice.attempt)
        ).all()
        assert [(i.buyer_handle, i.attempt, i.status) for i in invoices] == [
            ("price_one", 1, InvoiceStatus.VOID),
            ("price_one", 2, InvoiceStatus.SENT),
            ("price_two", 1, InvoiceStatus.PAID),
        ]
        assert [i.amount_cents for i in invoices] == [3250, 3750, 2000]
