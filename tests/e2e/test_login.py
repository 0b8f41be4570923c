"""A person logs in, sees their workspace's real figures, switches workspace and logs out; a
viewer can look but not change."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.demo import seed as demo
from backend.health import dashboard
from models import Alert, Workspace
from tests.e2e.conftest import Console, log_in

pytestmark = pytest.mark.e2e


def _workspace(console: Console, slug: str) -> Workspace:
    with Session(console.engine) as session:
        return session.scalars(select(Workspace).where(Workspace.slug == slug)).one()


def test_owner_sees_the_dashboard_figures_then_logs_out(page: Page, console: Console) -> None:
    lakeside = _workspace(console, demo.LIVE_SELLER)
    # An alert raised behind the console's back must show up: the figures are read, not drawn.
    with Session(console.engine) as session:
        session.add(Alert(workspace_id=lakeside.id, type="demo", message="Test alert"))
        session.commit()
        expected = dashboard.figures(session, workspace_id=lakeside.id)

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/?$"))
    log_in(page, "owner@lakeside.example", demo.DEMO_PASSWORD)

    expect(page.get_by_test_id("dash-workspace")).to_have_text("Lakeside Live Boutique")
    expect(page.get_by_test_id("dash-plan")).to_have_text("pro")
    expect(page.get_by_test_id("dash-shows")).to_have_text(str(expected.shows))
    expect(page.get_by_test_id("dash-alerts")).to_have_text(str(expected.open_alerts))
    expect(page.get_by_test_id("dash-integrations")).to_have_text(
        str(expected.connected_integrations)
    )
    expect(page.get_by_test_id("sandbox-badge")).to_be_visible()
    sandbox_link = page.locator("a", has=page.get_by_test_id("sandbox-badge"))
    expect(sandbox_link).to_have_attribute("href", console.sandbox_url)
    assert expected.open_alerts >= 1

    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile(r"/login/?$"))
    page.goto("/shows")
    expect(page).to_have_url(re.compile(r"/login/?\?next=%2Fshows$"))


def test_a_link_opened_logged_out_lands_on_its_page_after_login(
    page: Page, console: Console
) -> None:
    """Someone opens a link to the Jobs page while logged out: they log in and are there. A
    crafted link that would send them to another site after login takes them home instead."""
    page.goto("/login?next=//evil.example/phish")
    _submit_login(page, "ops@lakeside.example")
    expect(page.get_by_test_id("dash-workspace")).to_have_text("Lakeside Live Boutique")
    assert page.url.rstrip("/") == console.url
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile(r"/login/?$"))

    page.goto("/jobs")
    expect(page).to_have_url(re.compile(r"/login/?\?next=%2Fjobs$"))
    _submit_login(page, "ops@lakeside.example")
    expect(page).to_have_url(re.compile(r"/jobs/?$"))
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    expect(
        page.get_by_test_id("jobs-table").or_(page.get_by_test_id("jobs-table-empty"))
    ).to_be_visible()


def _submit_login(page: Page, email: str) -> None:
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(demo.DEMO_PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("logout")).to_be_visible()


def test_wrong_password_gets_a_clear_message(page: Page) -> None:
    log_in(page, "ops@lakeside.example", "not-the-password", expect_success=False)
    expect(page.get_by_test_id("login-error")).to_contain_text("Wrong email or password")
    expect(page).to_have_url(re.compile(r"/login/?$"))


def test_viewer_can_look_but_not_change(page: Page, console: Console) -> None:
    log_in(page, "books@lakeside.example", demo.DEMO_PASSWORD)
    expect(page.get_by_test_id("role-badge")).to_have_text("viewer")
    page.get_by_test_id("nav-shows").click()
    expect(page.get_by_test_id("shows-table")).to_contain_text("Sunday Closet Clear-out")
    page.get_by_test_id("nav-settings").click()
    expect(page.get_by_test_id("viewer-notice")).to_be_visible()
    expect(page.get_by_test_id("workspace-save")).to_be_disabled()
    expect(page.get_by_test_id("workspace-name")).to_have_attribute("readonly", "")
    assert _workspace(console, demo.LIVE_SELLER).name == "Lakeside Live Boutique"


def test_owner_switches_workspace(page: Page, console: Console) -> None:
    log_in(page, "owner@lakeside.example", demo.DEMO_PASSWORD)
    expect(page.get_by_test_id("dash-workspace")).to_have_text("Lakeside Live Boutique")
    page.get_by_test_id("workspace-switcher").click()
    page.get_by_role("option", name=re.compile("Reel Moments Studio")).click()
    expect(page.get_by_test_id("dash-workspace")).to_have_text("Reel Moments Studio")
    # Another test may have upgraded the studio: the badge shows whatever the database says.
    expect(page.get_by_test_id("dash-plan")).to_have_text(
        _workspace(console, demo.STUDIO).plan.value
    )
    expect(page.get_by_test_id("role-badge")).to_have_text("admin")
