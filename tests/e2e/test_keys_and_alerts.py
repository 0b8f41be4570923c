"""A restricted key that may only read is refused by "Test and save" with what it lacks, and
an operator acknowledges an alert on Health, reads its history and resolves it; a viewer sees
the alert and its buttons disabled."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.connections import credentials
from backend.demo import seed as demo
from backend.platform import incidents
from backend.sandbox.demo_accounts import LAKESIDE
from models import (
    Alert,
    AlertPriority,
    AlertState,
    Integration,
    IntegrationStatus,
    OutboxJob,
    Workspace,
)
from tests.e2e.conftest import Console, log_in

pytestmark = pytest.mark.e2e

_REFUSAL = (
    "The provided key 'rk_test_' does not have the required permissions for this endpoint on "
    f"account '{LAKESIDE.stripe_account}'. Having the 'rak_webhook_write' permission would "
    "allow this request to continue. " * 3
)


def _lakeside_stripe(console: Console) -> tuple[IntegrationStatus, str]:
    with Session(console.engine) as session:
        workspace = session.scalars(
            select(Workspace).where(Workspace.slug == demo.LIVE_SELLER)
        ).one()
        row = session.scalars(
            select(Integration).where(
                Integration.workspace_id == workspace.id, Integration.provider == "stripe"
            )
        ).one()
        return row.status, str(credentials.unseal(row).get("secret_key"))


def test_a_read_only_restricted_key_is_refused_naming_what_it_may_not_write(
    page: Page, console: Console
) -> None:
    before = _lakeside_stripe(console)
    log_in(page, "owner@lakeside.example", demo.DEMO_PASSWORD)
    page.goto("/integrations/stripe")
    expect(page.get_by_test_id("integration-status")).to_have_text("active")
    page.get_by_test_id("field-secret_key").fill(LAKESIDE.stripe_read_only_key)
    page.get_by_test_id("save-keys").click()
    # Webhook Endpoints too, unless the hub has already registered its endpoint: the stored
    # signing secret is kept when the field is left blank, and then no endpoint is written.
    expect(page.get_by_test_id("connect-result")).to_contain_text(
        re.compile(
            r"This restricted key may not write Customers(, Invoices and Webhook Endpoints| and "
            r"Invoices)\. In Stripe, open Developers → API keys, edit the key and give it Write "
            r"on Customers"
        )
    )
    # Nothing was saved: Stripe stays connected with the key it had.
    expect(page.get_by_test_id("integration-status")).to_have_text("active")
    assert _lakeside_stripe(console) == before
    assert LAKESIDE.stripe_read_only_key not in page.content()


def test_an_operator_acknowledges_and_resolves_a_long_alert_and_a_viewer_cannot(
    page: Page, console: Console
) -> None:
    with Session(console.engine) as session:
        workspace = session.scalars(
            select(Workspace).where(Workspace.slug == demo.LIVE_SELLER)
        ).one()
        alert = incidents.raise_incident(
            session,
            workspace_id=workspace.id,
            rule="job.dead",
            priority=AlertPriority.HIGH,
            message=f"A stripe.register_webhook job failed 1 time(s) and stopped: {_REFUSAL}",
            entity_type="outbox_job",
            entity_id="e2e-alert",
        ).alert
        session.commit()
        alert_id = alert.id
    try:
        log_in(page, "books@lakeside.example", demo.DEMO_PASSWORD)
        page.get_by_test_id("nav-health").click()
        row = page.get_by_test_id("alert-row").filter(has_text="stripe.register_webhook")
        expect(row).to_contain_text("open")
        for button in ("alert-acknowledge", "alert-resolve", "alert-snooze", "alert-ignore"):
            expect(row.get_by_test_id(button)).to_be_disabled()
        expect(row.get_by_test_id("alert-history")).to_be_enabled()

        page.get_by_test_id("logout").click()
        log_in(page, "ops@lakeside.example", demo.DEMO_PASSWORD)
        page.get_by_test_id("nav-health").click()
        row = page.get_by_test_id("alert-row").filter(has_text="stripe.register_webhook")
        # Shortened after a whole word, with an ellipsis.
        expect(row).to_contain_text("permission would allow this request to continue.")
        expect(row).to_contain_text("…")
        row.get_by_test_id("alert-acknowledge").click()
        expect(row).to_contain_text("acknowledged")
        expect(row.get_by_test_id("alert-acknowledge")).to_have_count(0)
        with Session(console.engine) as session:
            assert session.get_one(Alert, alert_id).state is AlertState.ACKNOWLEDGED
        row.get_by_test_id("alert-history").click()
        expect(page.get_by_test_id("alert-history-table")).to_contain_text("acknowledge")
        page.get_by_test_id("alert-history-close").click()
        row.get_by_test_id("alert-resolve").click()
        expect(row.get_by_test_id("alert-state")).to_have_text("resolved")
        expect(row.get_by_test_id("alert-resolve")).to_have_count(0)
        with Session(console.engine) as session:
            assert session.get_one(Alert, alert_id).state is AlertState.RESOLVED
    finally:
        with Session(console.engine) as session:
            session.execute(delete(Alert).where(Alert.id == alert_id))
            # Its notices, if a later journey connected a channel (alert:<id>:<notice>:<channel>).
            session.execute(
                delete(OutboxJob).where(OutboxJob.idempotency_key.like(f"alert:{alert_id}:%"))
            )
            session.commit()
