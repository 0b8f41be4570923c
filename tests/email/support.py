"""A workspace whose SendGrid is the sandbox's, and what the e-mail tests read back."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import backend.sandbox.sendgrid as sendgrid_emulator
from backend.connections import credentials
from backend.email import service
from models import EmailMessage, Integration, IntegrationStatus, ProposalTemplate, Role, Workspace
from tests import factories
from tests.support.hub_env import apply
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox

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
