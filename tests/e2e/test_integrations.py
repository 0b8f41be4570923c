"""The hub's journeys in the browser, against the provider sandbox: upgrade from Free through the
platform's Stripe Checkout, connect Stripe through its consent page (a replayed callback gets a
400 page) and with keys (a wrong key gets the explanation; a pasted key reaches neither the
browser nor Reflex's pickled states), see it masked, disconnect; a viewer can look but not
change."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, WebSocket, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.demo import seed as demo
from backend.sandbox.stripe.core import DEMO_PUBLISHABLE_KEY, DEMO_SECRET_KEY
from models import Integration, IntegrationStatus, Plan, Workspace
from tests.e2e.conftest import Console, log_in

pytestmark = pytest.mark.e2e


CANARY_KEY = "sk_test_CANARY_e2e_7f3a91c4d2"


def _frames_to_the_browser(page: Page) -> list[str]:
    """Every message the console's socket sends this page: the whole client-visible state."""
    frames: list[str] = []

    def watch(socket: WebSocket) -> None:
        socket.on("framereceived", lambda payload: frames.append(str(payload)))

    page.on("websocket", watch)
    return frames


def _pickles_written_since(states_dir: Path, since: float) -> list[Path]:
    """The state files Reflex has (re)written since ``since``, once its debounced write lands."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        files = [p for p in states_dir.glob("*.pkl") if p.stat().st_mtime >= since]
        if files:
            return sorted(states_dir.glob("*.pkl"))
        time.sleep(0.2)
    raise AssertionError(f"Reflex wrote no state into {states_dir}")


def _workspace(console: Console, slug: str) -> Workspace:
    with Session(console.engine) as session:
        return session.scalars(select(Workspace).where(Workspace.slug == slug)).one()


def test_free_owner_upgrades_and_stripe_unlocks_without_a_reload(
    page: Page, console: Console
) -> None:
    log_in(page, "owner@reelmoments.example", demo.DEMO_PASSWORD)
    expect(page.get_by_test_id("dash-plan")).to_have_text("free")
    page.get_by_test_id("nav-integrations").click()
    stripe_tile = page.get_by_test_id("tile-stripe")
    expect(stripe_tile).to_have_attribute("data-state", "locked")
    expect(stripe_tile).to_contain_text("Available on Pro")
    # Said once, as the tile's status; no dead button repeats it.
    expect(page.get_by_test_id("tile-shopify").get_by_text("Coming soon")).to_have_count(1)
    expect(page.get_by_test_id("tile-shopify").get_by_role("button")).to_have_count(0)

    stripe_tile.get_by_role("button", name="Upgrade").click()
    page.get_by_test_id("upgrade-pro").click()
    page.wait_for_url(re.compile(re.escape(console.sandbox_url) + "/stripe/_pages/checkout/"))
    page.get_by_test_id("pay").click()

    # Back on the hub: the subscription webhook goes sandbox → sidecar → inbox → scheduler,
    # and the open page unlocks the tile when the plan changes.
    page.wait_for_url(re.compile(r"/integrations"))
    expect(page.get_by_test_id("upgrade-notice")).to_be_visible()
    expect(page.get_by_test_id("tile-stripe")).to_have_attribute(
        "data-state", "connect", timeout=45_000
    )
    expect(page.get_by_test_id("upgrade-notice")).to_have_text(
        "Upgrade received: your plan is now Pro."
    )
    assert _workspace(console, demo.STUDIO).plan is Plan.PRO


def test_owner_disconnects_stripe_and_connects_it_with_keys(page: Page, console: Console) -> None:
    """The demo starts with Stripe connected (sandbox); the test leaves it connected again, as
    the invoice panel's browser tests need it."""
    frames = _frames_to_the_browser(page)
    log_in(page, "owner@lakeside.example", demo.DEMO_PASSWORD)
    page.goto("/integrations/stripe")
    expect(page.get_by_test_id("integration-status")).to_have_text("active")

    def disconnect() -> None:
        page.get_by_test_id("disconnect").click()
        page.get_by_test_id("confirm-disconnect").click()
        expect(page.get_by_test_id("integration-status")).to_have_text("inactive")

    disconnect()
    with Session(console.engine) as session:
        row = session.scalars(select(Integration).where(Integration.provider == "stripe")).one()
        assert row.status is IntegrationStatus.INACTIVE and row.credentials_enc is None

    # Connect through Stripe's consent page: the sidecar's start hop binds the flow to this
    # browser, the callback uses it up; the same callback again gets the 400 page.
    callbacks: list[str] = []
    page.on(
        "request", lambda r: callbacks.append(r.url) if "/oauth/stripe/callback" in r.url else None
    )
    page.get_by_test_id("oauth-connect").click()
    page.get_by_test_id("connect-allow").click()
    page.wait_for_url(re.compile(r"/integrations/stripe\?connected=1"))
    expect(page.get_by_test_id("integration-status")).to_have_text("active")
    assert len(callbacks) == 1
    replayed = page.goto(callbacks[0])
    assert replayed is not None and replayed.status == 400
    expect(page.get_by_test_id("oauth-refused")).to_contain_text("already used")
    page.goto("/integrations/stripe")
    disconnect()

    # A pasted key that fails its test waits for "Save anyway": backend-only and sealed, so
    # neither the page, nor the socket's messages, nor the pickled states hold it.
    pasted_at = time.time()
    page.get_by_test_id("field-secret_key").fill(CANARY_KEY)
    page.get_by_test_id("save-keys").click()
    expect(page.get_by_test_id("save-inactive")).to_be_visible()
    session_cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "hub_session")
    assert frames, "the socket's messages were not seen"
    assert not [f for f in frames if CANARY_KEY in f]
    assert CANARY_KEY not in page.content()
    pickles = _pickles_written_since(console.states_dir, pasted_at)
    for secret in (CANARY_KEY, session_cookie):
        assert not [p.name for p in pickles if secret.encode() in p.read_bytes()]
    # Sealed, yet still there for the next event.
    page.get_by_test_id("save-inactive").click()
    expect(page.get_by_test_id("connect-result")).to_contain_text("Saved as inactive")

    page.get_by_test_id("field-secret_key").fill(DEMO_PUBLISHABLE_KEY)
    page.get_by_test_id("save-keys").click()
    expect(page.get_by_test_id("connect-result")).to_contain_text("publishable key")
    expect(page.get_by_test_id("integration-status")).to_have_text("inactive")

    page.get_by_test_id("field-secret_key").fill(DEMO_SECRET_KEY)
    page.get_by_test_id("save-keys").click()
    expect(page.get_by_test_id("connect-result")).to_contain_text("ms)")
    expect(page.get_by_test_id("integration-status")).to_have_text("active")
    expect(page.get_by_test_id("field-secret_key")).to_have_attribute(
        "placeholder", re.compile(DEMO_SECRET_KEY[-4:])
    )
    # The key itself never comes back to the browser.
    assert DEMO_SECRET_KEY not in page.content()
    # The test's own request is in the call log, named as Stripe's API names it.
    expect(page.get_by_test_id("calls-table")).to_contain_text("GET /v1/account")
    # The trail names the owner and says what happened, in words.
    audit_table = page.get_by_test_id("audit-table")
    expect(audit_table).to_contain_text("Owner (owner@lakeside.example)")
    expect(audit_table).to_contain_text("Disconnected")
    expect(audit_table).to_contain_text("Connection test passed; status active")
    expect(audit_table).not_to_contain_text("operator:")
    expect(audit_table).not_to_contain_text("{")


def test_viewer_sees_the_hub_but_cannot_change_a_connection(page: Page) -> None:
    log_in(page, "books@lakeside.example", demo.DEMO_PASSWORD)
    page.get_by_test_id("nav-integrations").click()
    expect(page.get_by_test_id("tile-sendgrid")).to_be_visible()
    # No blue Connect the viewer cannot use: greyed out, with the reason.
    available = page.locator('[data-state="connect"]')
    expect(available.first).to_be_visible()
    connect = available.first.get_by_role("button", name="Connect")
    expect(connect).to_be_disabled()
    expect(available.first).to_contain_text("Only a workspace owner can connect.")
    expect(available.locator("a", has_text="Connect")).to_have_count(0)
    page.goto("/integrations/sendgrid")
    expect(page.get_by_test_id("save-keys")).to_be_disabled()
    expect(page.get_by_test_id("disconnect")).to_be_disabled()
