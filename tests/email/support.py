"""A workspace whose SendGrid is the sandbox's, and what the e-mail tests read back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

import backend.sandbox.sendgrid as sendgrid_emulator
from backend.api.app import create_app
from backend.connections import credentials
from backend.db import get_engine
from backend.email import service
from backend.jobs.runner import Runner
from backend.leads import capture
from models import (
    EmailMessage,
    InboundEvent,
    InboundStatus,
    Integration,
    IntegrationStatus,
    ProposalTemplate,
    Role,
    Workspace,
)
from tests import factories
from tests.api.webhook_support import settings
from tests.support.hub_env import apply
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox
from tests.support.servers import serve

SIDECAR = "https://hub.example"
LEAD_FORM_ORIGIN = "https://lakeside.example"


@pytest.fixture(name="sandbox")
def sendgrid_sandbox(
    make_sandbox: MakeSandbox,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> RunningSandbox:
    """The SendGrid sandbox, the hub pointed at it, and links made for the sidecar's address
    (import it as ``sandbox`` into a test module)."""
    running = make_sandbox(providers=[sendgrid_emulator])
    hub_env["HUB_PUBLIC_SIDECAR_URL"] = SIDECAR
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=running.url)
    return running


def workspace_with_sendgrid(engine: Engine, sandbox: RunningSandbox | None) -> int:
    with Session(engine) as session:
        ws = factories.workspace(session)
        key = "SG.none.none"
        if sandbox is not None:
            key = httpx.post(f"{sandbox.url}/sendgrid/_sandbox/api_keys", timeout=10).json()[
                "api_key"
            ]
        row = Integration(
            workspace_id=ws.id,
            provider="sendgrid",
            display_name="SendGrid",
            status=IntegrationStatus.ACTIVE,
            settings={"from_email": "hello@lakeside.example", "from_name": "Lakeside Media"},
        )
        session.add(row)
        session.flush()
        credentials.seal(row, {"api_key": key})
        session.commit()
        return ws.id


def prepare_lead_form(engine: Engine, ws: int) -> None:
    """The lead form's workspace: its site's origin allowed, an owner (who is notified of a new
    lead) and a viewer (who is not), and a published proposal for "recital media"."""
    with Session(engine) as session:
        workspace = session.get_one(Workspace, ws)
        workspace.lead_form_origins = [LEAD_FORM_ORIGIN]
        factories.member(session, workspace, email="sam@lakeside.example", role=Role.OWNER)
        factories.member(session, workspace, email="viewer@lakeside.example", role=Role.VIEWER)
        session.add(
            ProposalTemplate(
                workspace_id=ws,
                title="Recital media package",
                service_type="Recital media",
                body="Two cameras, edited film within two weeks.",
                published=True,
            )
        )
        session.commit()


def queue(
    engine: Engine,
    ws: int,
    addresses: list[str],
    *,
    purpose: str = "payment_request",
    prefix: str = "m",
) -> list[int]:
    context: dict[str, Any] = {
        "business_name": "Lakeside Media",
        "recipient_name": "Jane",
        "amount": "$450.00",
        "due_date": "May 1",
        "payment_url": "https://pay.example/i/1",
        "proposal_title": "Recital",
        "proposal_url": "https://p.example/1",
        "proposal_body": "Two cameras.",
    }
    with Session(engine) as session:
        ids = [
            service.queue_email(
                session,
                workspace_id=ws,
                purpose=purpose,
                to_email=address,
                to_name="Jane",
                subject_type="client",
                subject_id=n,
                context=context,
                dedupe_key=f"{prefix}:{purpose}:{n}",
            ).id
            for n, address in enumerate(addresses)
        ]
        session.commit()
        return ids


def messages(engine: Engine, ws: int) -> list[EmailMessage]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(EmailMessage)
                .where(EmailMessage.workspace_id == ws)
                .order_by(EmailMessage.id)
            )
        )


def mailbox(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    return list(sandbox.ctx.store.read("sendgrid")["messages"].values())


def drain(engine: Engine, *, provider_jobs: bool | None = None) -> list[str]:
    """Run the outbox's due jobs until none is left; returns the errors. ``provider_jobs``:
    False runs only local jobs (a new lead's ``lead.announce``, not the e-mails' sends)."""
    errors: list[str] = []
    runner = Runner(engine, "test-worker", batch=50, provider_jobs=provider_jobs)
    while True:
        report = runner.run_once()
        errors += report.errors
        if not report.claimed:
            return errors


def capture_stored_inquiries(engine: Engine) -> int:
    """Run the local jobs: the inbox's capture of the lead form's stored inquiries (and then
    the new leads' announcements). Returns how many stored inquiries are handled in all."""
    assert drain(engine, provider_jobs=False) == []
    with Session(engine) as session:
        return len(
            session.scalars(
                select(InboundEvent.id).where(
                    InboundEvent.provider == capture.INBOX_PROVIDER,
                    InboundEvent.status == InboundStatus.HANDLED,
                )
            ).all()
        )


def requests_made(sandbox: RunningSandbox) -> int:
    """The API requests the SendGrid sandbox answered."""
    answered = httpx.get(f"{sandbox.url}/_sandbox/requests", timeout=10).json()
    return int(answered.get("sendgrid", {}).get("requests", 0))


# The workspace's Inbound Parse secret in these tests (the sandbox's Reply posts it).
INBOUND_SECRET = "email-tests-inbound-parse-secret-0123456789"


@contextmanager
def sidecar_receiving_events(engine: Engine, sandbox: RunningSandbox, ws: int) -> Iterator[str]:
    """The sidecar on a loopback port (yields its URL), and the sandbox posting its SendGrid
    events to it for workspace ``ws``, signed with the key the workspace's SendGrid trusts, and
    its mailbox's replies to the workspace's Inbound Parse route."""
    app = create_app(settings())
    app.dependency_overrides[get_engine] = lambda: engine
    key = httpx.get(f"{sandbox.url}/sendgrid/_sandbox/public_key", timeout=10).json()["public_key"]
    with Session(engine) as session:
        row = session.scalars(
            select(Integration).where(
                Integration.workspace_id == ws, Integration.provider == "sendgrid"
            )
        ).one()
        row.settings = {
            **(row.settings or {}),
            "event_webhook_public_key": key,
        }
        workspace = session.get_one(Workspace, ws)
        workspace.inbound_parse_token = INBOUND_SECRET
        slug = workspace.slug
        session.commit()
    with serve(app) as sidecar:
        pointed = httpx.post(
            f"{sandbox.url}/sendgrid/_sandbox/event_webhook",
            json={"url": f"{sidecar}/webhooks/sendgrid/{slug}"},
            timeout=10,
        )
        assert pointed.status_code == 200, pointed.text
        host = sidecar.removeprefix("http://")
        parse_url = f"http://inbound:{INBOUND_SECRET}@{host}/webhooks/sendgrid-inbound/{slug}"
        pointed = httpx.post(
            f"{sandbox.url}/sendgrid/_sandbox/inbound_parse", json={"url": parse_url}, timeout=10
        )
        assert pointed.status_code == 200, pointed.text
        yield sidecar


def reply_in_mailbox(engine: Engine, sandbox: RunningSandbox, to_email: str, text: str) -> None:
    """Press Reply on the newest mail to ``to_email`` in the sandbox's mailbox (the sidecar of
    ``sidecar_receiving_events`` must be listening) and wait until the sidecar has stored it."""
    sent = [m for m in mailbox(sandbox) if m["to"]["email"] == to_email]
    assert sent, f"no mail to {to_email} in the sandbox's mailbox"
    with Session(engine) as session:
        before = session.scalar(select(func.count()).select_from(InboundEvent))
    answer = httpx.post(
        f"{sandbox.url}/sendgrid/_pages/mailbox/{quote(sent[-1]['id'], safe='')}/reply",
        data={"text": text},
        timeout=10,
        follow_redirects=True,
    )
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with Session(engine) as session:
            if session.scalar(select(func.count()).select_from(InboundEvent)) > (before or 0):
                return
        time.sleep(0.05)
    raise AssertionError("the sidecar never stored the sandbox's reply")
