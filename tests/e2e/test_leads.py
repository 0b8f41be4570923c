"""Issue 15, browser: a person sends the hosted lead form; the operator finds the new lead on the
Leads page, opens it and sees its proposal e-mail sent; the person opens that e-mail in the
sandbox's mailbox and, without a reload, the lead page shows it Opened and the lead Proposal
viewed. Then the operator writes a note and filters and searches the Leads page.

The studio is a workspace of this test's own (Pro, so SendGrid may be connected): SendGrid is
the sandbox's, with its signed Event Webhook aimed at the sidecar, so every step crosses the
real processes (sidecar form → scheduler sends → sandbox → signed events → sidecar → scheduler
applies them → console polls).
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend import config
from backend.accounts import service as accounts
from backend.connections import credentials
from backend.security.crypto import KeyRing
from models import (
    EmailMessage,
    Integration,
    IntegrationStatus,
    Lead,
    Plan,
    ProposalTemplate,
    Role,
    Workspace,
)
from tests.e2e.conftest import Console, log_in

pytestmark = pytest.mark.e2e

PASSWORD = "harbour-lights-2026"
# The hosted form offers "recital media"; the template matches it whatever the case.
SERVICE = "recital media"
TEMPLATE_SERVICE = "Recital Media"
PROPOSAL = "Harbour recital package"


def _studio(console: Console) -> tuple[str, str]:
    """A Pro workspace with the sandbox's SendGrid connected and a published proposal template
    for SERVICE; its owner's e-mail. Returns (slug, owner e-mail)."""
    tag = uuid.uuid4().hex[:6]
    slug, owner = f"harbour-{tag}", f"owner@harbour-{tag}.example"
    sendgrid = f"{console.sandbox_url}/sendgrid"
    key = httpx.post(f"{sendgrid}/_sandbox/api_keys", timeout=10).json()["api_key"]
    public_key = httpx.get(f"{sendgrid}/_sandbox/public_key", timeout=10).json()["public_key"]
    # SendGrid's Event Webhook setting, for this key's mail: the sidecar's URL for the studio.
    aimed = httpx.post(
        f"{sendgrid}/_sandbox/event_webhook",
        json={"url": f"{console.sidecar_url}/webhooks/sendgrid/{slug}"},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert aimed.status_code == 200, aimed.text
    password_hash = accounts.new_password_hash(PASSWORD)  # before the transaction opens
    with Session(console.engine) as session:
        workspace = Workspace(name="Harbour Lights Studio", slug=slug, plan=Plan.PRO)
        session.add(workspace)
        session.flush()
        operator = accounts.create_operator(
            session, email=owner, name="Harbour Owner", password_hash=password_hash
        )
        accounts.add_member(
            session, workspace_id=workspace.id, operator_id=operator.id, role=Role.OWNER
        )
        integration = Integration(
            workspace_id=workspace.id,
            provider="sendgrid",
            display_name="SendGrid",
            status=IntegrationStatus.ACTIVE,
            settings={
                "from_email": "hello@harbour.example",
                "from_name": "Harbour Lights Studio",
                "event_webhook_public_key": public_key,
            },
        )
        session.add(integration)
        session.flush()
        # The console's processes run without HUB_ variables: the development key ring.
        credentials.seal(
            integration,
            {"api_key": key},
            ring=KeyRing.parse(config._DEV_CREDENTIAL_KEY),
        )
        session.add(
            ProposalTemplate(
                workspace_id=workspace.id,
                title=PROPOSAL,
                service_type=TEMPLATE_SERVICE,
                body="Two cameras and a highlight reel.",
                published=True,
            )
        )
        session.commit()
    return slug, owner


def test_operator_sees_the_new_leads_proposal_opened_without_reloading(
    page: Page, console: Console
) -> None:
    slug, owner = _studio(console)
    lead_email = f"jane.{uuid.uuid4().hex[:6]}@families.example"

    # A parent sends the studio's hosted form (plain HTML, on the sidecar).
    form = page.context.new_page()
    form.goto(f"{console.sidecar_url}/forms/{slug}")
    form.locator("#name").fill("Jane Doe")
    form.locator("#email").fill(lead_email)
    form.locator("#company").fill("Riverside Ballet")
    form.locator("#service_type").select_option(SERVICE)
    form.locator("#message").fill("Could you film our spring recital on May 3?")
    form.get_by_test_id("lead-form-submit").click()
    expect(form.get_by_test_id("lead-form-message")).to_contain_text("Thank you")
    form.close()

    # The operator finds the new lead on the Leads page.
    log_in(page, owner, PASSWORD)
    page.get_by_test_id("nav-leads").click()
    row = page.get_by_test_id("lead-row").filter(has_text="Jane Doe")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Riverside Ballet")
    expect(row).to_contain_text(SERVICE)
    expect(row.get_by_test_id("lead-status")).to_have_text("New")
    row.get_by_role("link", name="Jane Doe").click()
    expect(page.get_by_test_id("lead-name")).to_have_text("Jane Doe")
    expect(page.get_by_test_id("lead-email")).to_have_text(lead_email)
    expect(page.get_by_test_id("lead-history")).to_contain_text("spring recital on May 3")
    # Anything that reloads the page would lose this.
    page.evaluate("window.__still_the_same_page = true")

    # The scheduler sends the proposal; the page follows it without a reload.
    proposal = page.locator('[data-testid="email-row"][data-template="proposal_sent"]')
    expect(proposal).to_have_attribute(
        "data-status", re.compile(r"^(sent|processed|delivered)$"), timeout=60_000
    )
    expect(proposal).to_contain_text(PROPOSAL)
    expect(proposal.get_by_test_id("email-opens")).to_have_text("0")

    # In the sandbox's mailbox the parent opens the proposal.
    with Session(console.engine) as session:
        message = session.scalars(
            select(EmailMessage).where(
                EmailMessage.to_email == lead_email, EmailMessage.purpose == "proposal_sent"
            )
        ).one()
        assert message.sendgrid_message_id
    mailbox = page.context.new_page()
    mailbox.goto(f"{console.sandbox_url}/sendgrid/_pages/mailbox")
    entry = mailbox.locator("tr").filter(has_text=lead_email)
    expect(entry).to_have_count(1)
    entry.get_by_role("link", name=re.compile(PROPOSAL)).click()
    mailbox.get_by_role("button", name="open", exact=True).click()
    expect(mailbox.get_by_role("button", name="open", exact=True)).to_be_visible()

    # Back on the lead page, never reloaded: the proposal is Opened and the lead has viewed it.
    expect(proposal).to_have_attribute("data-status", "opened", timeout=60_000)
    expect(proposal.get_by_test_id("email-status")).to_have_text("Opened")
    expect(proposal.get_by_test_id("email-opens")).to_have_text("1")
    expect(page.get_by_test_id("lead-status")).to_have_text("Proposal viewed")
    assert page.evaluate("window.__still_the_same_page") is True
    with Session(console.engine) as session:
        lead = session.scalars(select(Lead).where(Lead.email == lead_email)).one()
        assert lead.status == "proposal_viewed"

    # A note for the team goes into the lead's history.
    page.get_by_test_id("note-input").fill("Called Jane: two cameras, May 3 confirmed.")
    page.get_by_test_id("note-add").click()
    note = page.locator('[data-testid="lead-message"][data-kind="note"]')
    expect(note).to_contain_text("May 3 confirmed")

    # The Leads page: search and the status filter find her; a search for nobody finds none.
    page.get_by_test_id("nav-leads").click()
    search = page.get_by_test_id("leads-search")
    search.fill("riverside")
    expect(page.get_by_test_id("lead-row")).to_have_count(1)
    expect(page.get_by_test_id("lead-row").first).to_contain_text("Jane Doe")
    expect(page.get_by_test_id("lead-row").first.get_by_test_id("lead-status")).to_have_text(
        "Proposal viewed"
    )
    search.fill("nobody-by-this-name")
    expect(page.get_by_test_id("leads-table-empty")).to_contain_text("No lead matches")
    page.get_by_test_id("leads-clear").click()
    page.get_by_test_id("leads-status-filter").click()
    page.get_by_role("option", name="New", exact=True).click()
    expect(page.get_by_test_id("leads-table-empty")).to_be_visible()
    page.get_by_test_id("leads-status-filter").click()
    page.get_by_role("option", name="Proposal viewed", exact=True).click()
    expect(page.get_by_test_id("lead-row")).to_have_count(1)
    expect(page.get_by_test_id("lead-row").first).to_contain_text("Jane Doe")
