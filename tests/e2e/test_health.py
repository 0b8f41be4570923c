"""Journey 4's page, as the people on it live it: the owner opens Health and sees a tile per
connected provider with its status in words, and the charts drawn with data (Plotly's traces
in the page, not only the figure in the state); switches the window; opens a tile's recent
failures; acknowledges an alert. A viewer sees the same page with the alert's buttons
disabled."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.demo import seed as demo
from backend.platform import incidents
from models import Alert, AlertPriority, AlertState, OutboxJob, Workspace
from tests.e2e.conftest import Console, log_in

pytestmark = pytest.mark.e2e

# True once the chart's Plotly graph holds traces with a value above zero, drawn as SVG.
DRAWN = """(testId) => {
    const graph = document.querySelector(`[data-testid="${testId}"] .js-plotly-plot`);
    if (!graph || !graph.data || graph.querySelectorAll('.trace').length === 0) return false;
    return graph.data.some(t => (t.y || []).some(v => v > 0));
}"""


def _raise_alert(console: Console) -> int:
    with Session(console.engine) as session:
        workspace = session.scalars(
            select(Workspace).where(Workspace.slug == demo.LIVE_SELLER)
        ).one()
        alert = incidents.raise_incident(
            session,
            workspace_id=workspace.id,
            rule="provider.failing",
            priority=AlertPriority.CRITICAL,
            message="7 of 9 calls to Stripe failed in the last 15 minutes (e2e-health).",
            entity_type="provider",
            entity_id="e2e-health",
        ).alert
        session.commit()
        return alert.id


def test_the_owner_reads_health_and_acknowledges_and_a_viewer_cannot(
    page: Page, console: Console
) -> None:
    alert_id = _raise_alert(console)
    try:
        log_in(page, "owner@lakeside.example", demo.DEMO_PASSWORD)
        page.get_by_test_id("nav-health").click()
        stripe = page.locator('[data-testid="health-tile"][data-provider="stripe"]')
        expect(stripe).to_be_visible()
        expect(stripe.get_by_test_id("tile-status")).to_contain_text("Stripe")
        status = stripe.get_attribute("data-status")
        assert status in ("operational", "degraded", "partial outage", "major outage")
        expect(stripe.get_by_test_id("tile-latency")).to_contain_text("p95")
        expect(stripe.get_by_test_id("tile-breaker")).not_to_be_empty()
        # The demo's week of calls, drawn: the last 24 hours, then the week.
        page.wait_for_function(DRAWN, arg="chart-outcomes")
        page.wait_for_function(DRAWN, arg="chart-latency")
        page.get_by_test_id("health-window").get_by_role("radio", name="7 days").click()
        expect(stripe.get_by_test_id("tile-calls")).to_contain_text("in 7 days")
        page.wait_for_function(DRAWN, arg="chart-outcomes")

        stripe.get_by_test_id("tile-failures").click()
        expect(page.get_by_role("dialog")).to_contain_text("Stripe: failed calls in the last hour")
        expect(page.get_by_test_id("failures-jobs")).to_have_attribute(
            "href", "/jobs?provider=stripe"
        )
        page.get_by_test_id("failures-close").click()

        row = page.get_by_test_id("alert-row").filter(has_text="e2e-health")
        row.get_by_test_id("alert-acknowledge").click()
        expect(row.get_by_test_id("alert-state")).to_have_text("acknowledged")
        with Session(console.engine) as session:
            assert session.get_one(Alert, alert_id).state is AlertState.ACKNOWLEDGED

        page.get_by_test_id("logout").click()
        log_in(page, "books@lakeside.example", demo.DEMO_PASSWORD)
        page.get_by_test_id("nav-health").click()
        expect(page.locator('[data-testid="health-tile"][data-provider="stripe"]')).to_be_visible()
        page.wait_for_function(DRAWN, arg="chart-outcomes")
        row = page.get_by_test_id("alert-row").filter(has_text="e2e-health")
        expect(row.get_by_test_id("alert-state")).to_have_text("acknowledged")
        for button in ("alert-resolve", "alert-snooze", "alert-ignore"):
            expect(row.get_by_test_id(button)).to_be_disabled()
    finally:
        with Session(console.engine) as session:
            session.execute(delete(Alert).where(Alert.id == alert_id))
            session.execute(
                delete(OutboxJob).where(OutboxJob.idempotency_key.like(f"alert:{alert_id}:%"))
            )
            session.commit()
