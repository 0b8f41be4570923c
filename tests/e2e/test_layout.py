"""The console on a phone and on a long page: on a 390 px wide screen the navigation is a menu
and nothing is cut off at the side; on a desktop the sidebar stays in view while a long page
scrolls; the Jobs page shows received webhooks a page at a time."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.demo import seed as demo
from models import InboundEvent, InboundStatus, Workspace
from tests.e2e.conftest import Console, log_in

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}


def _fits(page: Page) -> None:
    """Nothing sticks out at the side: the page scrolls down, never sideways."""
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
    )
    # What sticks out, for the failure message.
    wide = page.evaluate(
        """[...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .slice(-5)
            .map(e => e.tagName + '.' + e.className + ' ' + (e.innerText || '').slice(0, 40))"""
    )
    assert max(widths[0], widths[1]) <= widths[2], (page.url, widths, wide)


def test_operator_uses_the_console_on_a_phone(browser: Browser, console: Console) -> None:
    context = browser.new_context(base_url=console.url, viewport=PHONE, has_touch=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        log_in(page, "owner@lakeside.example", demo.DEMO_PASSWORD)
        expect(page.get_by_test_id("dash-workspace")).to_have_text("Lakeside Live Boutique")
        expect(page.get_by_test_id("sidebar")).to_be_hidden()
        _fits(page)

        for label, heading, ready in (
            ("Integrations", "Integrations", "tile-stripe"),
            ("Jobs", "Jobs", "kinds-table"),
            ("Shows", "Shows", "shows-table"),
            ("Settings", "Settings", "workspace-name"),
        ):
            page.get_by_test_id("nav-menu").click()
            drawer = page.get_by_test_id("nav-drawer")
            expect(drawer).to_be_visible()
            drawer.get_by_test_id(f"nav-{label.lower()}").click()
            # As long as the context's default: on a loaded machine the route change that
            # follows the click has taken more than expect's own 5 s.
            expect(page).to_have_url(re.compile(f"/{label.lower()}/?$"), timeout=20_000)
            expect(drawer).to_be_hidden()
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            expect(page.get_by_test_id(ready)).to_be_visible()
            _fits(page)

        page.goto("/integrations/stripe")
        expect(page.get_by_test_id("integration-status")).to_be_visible()
        _fits(page)
    finally:
        context.close()


def test_sidebar_stays_in_view_and_webhooks_come_a_page_at_a_time(
    page: Page, console: Console
) -> None:
    with Session(console.engine) as session:
        workspace_id = session.scalars(
            select(Workspace.id).where(Workspace.slug == demo.LIVE_SELLER)
        ).one()
        session.add_all(
            InboundEvent(
                provider="e2e",
                external_id=f"evt_layout_{n}",
                event_type="paging.check",
                workspace_id=workspace_id,
                payload={},
                status=InboundStatus.HANDLED,
            )
            for n in range(45)
        )
        session.commit()
    try:
        log_in(page, "ops@lakeside.example", demo.DEMO_PASSWORD)
        page.get_by_test_id("nav-jobs").click()
        inbound = page.get_by_test_id("inbound-table")
        expect(inbound).to_contain_text("paging.check")
        expect(inbound.locator("tbody tr")).to_have_count(20)
        expect(page.get_by_test_id("inbound-page")).to_have_text("Page 1")
        expect(page.get_by_test_id("inbound-newer")).to_be_disabled()

        # At the bottom of the long page the navigation is still on screen.
        page.get_by_test_id("inbound-older").scroll_into_view_if_needed()
        assert page.evaluate("window.scrollY") > 0
        box = page.get_by_test_id("sidebar").bounding_box()
        assert box is not None and box["y"] == 0 and box["height"] >= 700
        expect(page.get_by_test_id("nav-settings")).to_be_in_viewport()

        page.get_by_test_id("inbound-older").click()
        expect(page.get_by_test_id("inbound-page")).to_have_text("Page 2")
        expect(inbound.locator("tbody tr")).to_have_count(20)
        page.get_by_test_id("inbound-older").click()
        expect(page.get_by_test_id("inbound-page")).to_have_text("Page 3")
        page.get_by_test_id("inbound-newer").click()
        page.get_by_test_id("inbound-newer").click()
        expect(page.get_by_test_id("inbound-page")).to_have_text("Page 1")
        expect(page.get_by_test_id("inbound-newer")).to_be_disabled()
    finally:
        with Session(console.engine) as session:
            session.execute(delete(InboundEvent).where(InboundEvent.provider == "e2e"))
            session.commit()
