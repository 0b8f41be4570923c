"""Issue 6, done when: on the demo data the operator opens the ended show, sets a missing price,
generates all invoices, watches the progress reach done, pays one buyer's hosted invoice in the
sandbox and sees that buyer turn Paid without reloading; generating again makes nothing new.
Also: claims imported from a CSV file after a preview, and a viewer who cannot change a thing."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.demo import seed as demo
from backend.invoicing import service as invoicing
from models import Invoice, InvoiceStatus, OutboxJob, Show, ShowItem
from tests.e2e.conftest import Console, log_in

pytestmark = pytest.mark.e2e

SHOW = "Sunday Closet Clear-out"
LIVE_SHOW = "Tuesday Night Jewellery Live"


def _show_id(console: Console) -> int:
    with Session(console.engine) as session:
        return session.scalars(select(Show.id).where(Show.title == SHOW)).one()


def _invoices_and_jobs(console: Console, show_id: int) -> tuple[int, int]:
    with Session(console.engine) as session:
        invoices = session.scalar(
            select(func.count()).select_from(Invoice).where(Invoice.show_id == show_id)
        )
        jobs = session.scalar(
            select(func.count())
            .select_from(OutboxJob)
            .where(OutboxJob.kind == invoicing.CREATE_KIND)
        )
        return int(invoices or 0), int(jobs or 0)


def _open_show(page: Page, title: str = SHOW) -> None:
    page.get_by_test_id("nav-shows").click()
    row = page.get_by_test_id("show-row").filter(has_text=title)
    row.get_by_role("link", name=title).click()
    expect(page.get_by_test_id("show-title")).to_have_text(title)
    expect(page.get_by_test_id("buyer-row").first).to_be_visible()


def test_operator_invoices_the_show_and_sees_a_payment_without_reloading(
    page: Page, console: Console
) -> None:
    show_id = _show_id(console)
    log_in(page, "ops@lakeside.example", demo.DEMO_PASSWORD)
    _open_show(page)
    expect(page.get_by_test_id("fig-buyers")).to_have_text("44")
    # Anything that reloads the page would lose this.
    page.evaluate("window.__still_the_same_page = true")

    # A missing price: a typo is explained next to its input, then the price is set (the
    # item keeps its row in the items table, now priced).
    number = page.locator('[data-testid="item-row"][data-priced="no"]').first.get_attribute(
        "data-number"
    )
    item = page.locator(f'[data-testid="item-row"][data-number="{number}"]')
    item.get_by_test_id("price-input").fill("twelve")
    item.get_by_test_id("price-save").click()
    expect(item.get_by_test_id("price-error")).to_contain_text("is not a price")
    item.get_by_test_id("price-input").fill("14.50")
    item.get_by_test_id("price-save").click()
    expect(item).to_have_attribute("data-priced", "yes")
    expect(item.get_by_test_id("item-price")).to_have_text("$14.50")
    with Session(console.engine) as session:
        priced = session.scalars(
            select(ShowItem).where(ShowItem.show_id == show_id, ShowItem.number == int(number or 0))
        ).one()
        assert priced.price_cents == 1450

    # Generate all, and watch the progress until every job has finished.
    page.get_by_test_id("generate-all").click()
    expect(page.get_by_test_id("progress-state")).to_have_text("finished", timeout=180_000)
    expect(page.get_by_test_id("progress")).to_contain_text("0 queued")
    invoices, jobs = _invoices_and_jobs(console, show_id)
    assert invoices == 44

    # One buyer pays their hosted invoice in the sandbox, in another tab.
    sent = page.locator('[data-testid="buyer-row"][data-status="sent"]').first
    handle = sent.get_attribute("data-handle")
    link = sent.get_by_test_id("view-on-stripe")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("href", re.compile(re.escape(console.sandbox_url)))
    with page.context.expect_page() as opened:
        link.click()
    hosted = opened.value
    # The buyer's invoice names each item and its lot; the amount is the line's total.
    first_line = hosted.get_by_test_id("line").first
    expect(first_line).to_contain_text(re.compile(r"\(lot \d+"))
    expect(first_line).to_contain_text("Qty 1")
    expect(first_line).not_to_contain_text("#")
    hosted.get_by_test_id("pay").click()
    expect(hosted.get_by_test_id("status")).to_have_text("paid")

    # Back on the panel, never reloaded: the row turns Paid and a toast says so.
    with Session(console.engine) as session:
        amount = session.scalars(
            select(Invoice.amount_cents).where(
                Invoice.show_id == show_id, Invoice.buyer_handle == handle
            )
        ).one()
    row = page.locator(f'[data-testid="buyer-row"][data-handle="{handle}"]')
    expect(row.get_by_test_id("invoice-status")).to_have_text("Paid")
    expect(page.get_by_text(f"@{handle} paid ${amount / 100:,.2f}")).to_be_visible()
    assert page.evaluate("window.__still_the_same_page") is True
    with Session(console.engine) as session:
        paid = session.scalars(
            select(Invoice).where(Invoice.show_id == show_id, Invoice.buyer_handle == handle)
        ).one()
        assert paid.status is InvoiceStatus.PAID

    # Generating again creates nothing: no invoice row, no job.
    page.get_by_test_id("generate-all").click()
    expect(page.get_by_text("nothing new to generate")).to_be_visible()
    assert _invoices_and_jobs(console, show_id) == (invoices, jobs)

    # The webhook arrived, so Stripe and we agree.
    page.get_by_test_id("check-stripe").click()
    expect(page.get_by_test_id("no-findings")).to_be_visible(timeout=60_000)
    # The Shows page counts the show's invoices by status.
    page.get_by_test_id("nav-shows").click()
    counts = page.get_by_test_id("show-row").filter(has_text=SHOW).get_by_test_id("show-invoices")
    expect(counts).to_contain_text("1 paid")
    # The payment is on the timeline under the buyer's handle, not a row id.
    page.get_by_test_id("nav-timeline").click()
    timeline = page.get_by_test_id("timeline-table")
    expect(timeline).to_contain_text(str(handle))
    expect(timeline).not_to_contain_text("buyer #")


def _choose_file(page: Page, name: str, content: str) -> None:
    page.locator('[data-testid="claims-upload"] input[type="file"]').set_input_files(
        files=[{"name": name, "mimeType": "text/csv", "buffer": content.encode()}]
    )


def test_operator_imports_claims_from_a_csv_after_a_preview(page: Page, console: Console) -> None:
    log_in(page, "ops@lakeside.example", demo.DEMO_PASSWORD)
    _open_show(page, LIVE_SHOW)
    before = page.get_by_test_id("buyer-row").count()
    page.get_by_test_id("tab-claims").click()
    header = "item_number,platform_user_id,handle,item_title,price\n"
    _choose_file(page, "bad.csv", header + "1,fb_csv_1,csv_one,,\nseven,fb_csv_2,csv_two,,\n")
    expect(page.get_by_test_id("import-error")).to_contain_text("line 3")
    expect(page.get_by_test_id("import-claims")).to_be_disabled()

    _choose_file(page, "good.csv", header + "1,fb_csv_1,csv_one,,\n9,fb_csv_2,csv_two,Brooch,25\n")
    expect(page.get_by_test_id("import-summary")).to_contain_text("2 claims to import")
    page.get_by_test_id("import-claims").click()
    expect(page.get_by_text("Imported 2 claims")).to_be_visible()
    page.get_by_role("tab", name="Invoices").click()
    expect(page.get_by_test_id("buyer-row")).to_have_count(before + 2)
    expect(page.locator('[data-testid="buyer-row"][data-handle="csv_two"]')).to_contain_text(
        "#9 Brooch"
    )


def test_viewer_sees_the_panel_but_cannot_change_it(page: Page, console: Console) -> None:
    log_in(page, "books@lakeside.example", demo.DEMO_PASSWORD)
    _open_show(page)
    expect(page.get_by_test_id("generate-all")).to_be_disabled()
    expect(page.get_by_test_id("price-input").first).to_be_disabled()
    expect(page.get_by_test_id("price-save").first).to_be_disabled()
    changes = page.get_by_test_id("rollup").get_by_role(
        "button", name=re.compile(r"^(Generate|Void|Send link|Retry|Regenerate)$")
    )
    expect(changes.first).to_be_disabled()
    for index in range(changes.count()):
        expect(changes.nth(index)).to_be_disabled()
