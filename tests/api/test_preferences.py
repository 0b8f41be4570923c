"""The preferences page on the sidecar (``/preferences/{token}``, every e-mail's footer): GET
shows the address's groups and changes nothing; POST unsubscribes from or resubscribes to one
group, recorded on the person's timeline; a bounce's or a spam report's ``all`` stays whatever
is posted; a bad or foreign link gets a page, not a trace. The link is in every mail sent."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.email import preferences
from backend.jobs.runner import Runner
from models import EmailMessage, EmailSuppression, EngagementEvent, Lead
from tests import factories
from tests.api.webhook_support import client_for
from tests.email.links_support import tampered
from tests.email.support import (
    SIDECAR,
    mailbox,
    queue,
    sendgrid_sandbox,  # noqa: F401 (the "sandbox" fixture)
    workspace_with_sendgrid,
)
from tests.support.sandbox_fixtures import RunningSandbox

FORM = {"content-type": "application/x-www-form-urlencoded"}
JANE = "jane@example.com"


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    yield from client_for(engine)


def _message(engine: Engine, *, slug: str = "acme", to: str = JANE) -> tuple[int, int]:
    """A proposal mailed to a lead at ``to``: (workspace id, message id)."""
    with Session(engine) as session:
        ws = factories.workspace(session, slug=slug)
        lead = Lead(workspace_id=ws.id, email=to, name="Jane Doe")
        session.add(lead)
        session.flush()
        message = EmailMessage(
            workspace_id=ws.id,
            purpose="proposal_sent",
            template="proposal_sent",
            to_email=to,
            subject_type="lead",
            subject_id=lead.id,
            status="sent",
        )
        session.add(message)
        session.commit()
        return ws.id, message.id


def _suppressions(engine: Engine) -> list[tuple[int, str, str]]:
    with Session(engine) as session:
        rows = session.execute(
            select(
                EmailSuppression.workspace_id,
                EmailSuppression.email,
                EmailSuppression.purpose_group,
            )
        ).all()
        return sorted((r[0], r[1], r[2]) for r in rows)


def _events(engine: Engine) -> list[tuple[str, str, str]]:
    with Session(engine) as session:
        rows = session.scalars(select(EngagementEvent).order_by(EngagementEvent.id)).all()
        return [(e.source, e.name, e.properties["group"]) for e in rows]


def _post(client: TestClient, path: str, group: str, action: str) -> str:
    answer = client.post(path, content=f"group={group}&action={action}".encode(), headers=FORM)
    assert answer.status_code == 200, answer.text
    return answer.text


def test_get_shows_the_groups_and_changes_nothing(engine: Engine, client: TestClient) -> None:
    ws, message = _message(engine)
    page = client.get(f"/preferences/{preferences.token_for(message, ws)}")
    assert page.status_code == 200
    assert 'data-testid="status-marketing">Subscribed' in page.text
    assert 'data-testid="status-reminders">Subscribed' in page.text
    assert "unsubscribe-marketing" in page.text and "preferences-blocked" not in page.text
    assert _suppressions(engine) == [] and _events(engine) == []


def test_post_unsubscribes_and_resubscribes_one_group(engine: Engine, client: TestClient) -> None:
    ws, message = _message(engine)
    path = f"/preferences/{preferences.token_for(message, ws)}"
    text = _post(client, path, "marketing", "unsubscribe")
    assert "You are unsubscribed from offers and proposals." in text
    assert 'data-testid="status-marketing">Unsubscribed' in text
    assert 'data-testid="status-reminders">Subscribed' in text
    _post(client, path, "marketing", "unsubscribe")  # again: nothing more
    assert _suppressions(engine) == [(ws, JANE, "marketing")]
    assert 'data-testid="status-marketing">Unsubscribed' in client.get(path).text
    text = _post(client, path, "marketing", "resubscribe")
    assert "You are subscribed to offers and proposals again." in text
    assert _suppressions(engine) == []
    _post(client, path, "reminders", "unsubscribe")
    assert _suppressions(engine) == [(ws, JANE, "reminders")]
    assert _events(engine) == [
        ("preferences", "email.group_unsubscribed", "marketing"),
        ("preferences", "email.group_resubscribed", "marketing"),
        ("preferences", "email.group_unsubscribed", "reminders"),
    ]


def test_an_all_suppression_is_not_lifted_here(engine: Engine, client: TestClient) -> None:
    ws, message = _message(engine)
    with Session(engine) as session:
        session.add_all(
            EmailSuppression(workspace_id=ws, email=JANE, purpose_group=g, reason="bounce")
            for g in ("all", "marketing")
        )
        session.commit()
    path = f"/preferences/{preferences.token_for(message, ws)}"
    assert "preferences-blocked" in client.get(path).text
    text = _post(client, path, "marketing", "resubscribe")
    assert "cannot be undone on this page" in text
    assert _suppressions(engine) == [(ws, JANE, "all")]
    for group, action in (
        ("all", "resubscribe"),
        ("transactional", "unsubscribe"),
        ("marketing", "drop"),
    ):
        answer = client.post(path, content=f"group={group}&action={action}".encode(), headers=FORM)
        assert answer.status_code == 400 and "Traceback" not in answer.text
    assert _suppressions(engine) == [(ws, JANE, "all")]


def test_a_bad_or_foreign_link_gets_a_page_and_changes_nothing(
    engine: Engine, client: TestClient
) -> None:
    ws, message = _message(engine)
    theirs_ws, theirs = _message(engine, slug="theirs", to="sam@theirs.example")
    good = preferences.token_for(message, ws)
    for token in (
        tampered(good),
        preferences.token_for(theirs, ws),  # their message under my workspace
        "made-up",
    ):
        path = f"/preferences/{token}"
        for answer in (
            client.get(path),
            client.post(path, content=b"group=marketing&action=unsubscribe", headers=FORM),
        ):
            assert answer.status_code == 400
            assert "This preferences link does not work" in answer.text
            assert "Traceback" not in answer.text and "theirs" not in answer.text
    assert _suppressions(engine) == [] and theirs_ws != ws


def test_a_team_member_s_change_is_not_the_lead_s_engagement(
    engine: Engine, client: TestClient
) -> None:
    """A new-lead notification is about the lead but mailed to an owner: the owner's change
    is a suppression of the owner's address, not an event on the lead's timeline."""
    ws, _ = _message(engine)
    with Session(engine) as session:
        lead_id = session.scalars(select(Lead.id)).one()
        note = EmailMessage(
            workspace_id=ws,
            purpose="new_lead_notification",
            template="new_lead_notification",
            to_email="sam@acme.example",
            subject_type="lead",
            subject_id=lead_id,
            status="sent",
        )
        session.add(note)
        session.commit()
        note_id = note.id
    _post(client, f"/preferences/{preferences.token_for(note_id, ws)}", "reminders", "unsubscribe")
    assert _suppressions(engine) == [(ws, "sam@acme.example", "reminders")]
    assert _events(engine) == []


def test_every_mail_sent_carries_a_working_preferences_link(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    ws = workspace_with_sendgrid(engine, sandbox)
    (message_id,) = queue(engine, ws, [JANE], purpose="payment_reminder")
    while Runner(engine, "test-worker").run_once().claimed:
        pass
    (mail,) = mailbox(sandbox)
    found = re.search(r'href="([^"]+)">Manage preferences</a>', mail["html"])
    assert found is not None
    link = found.group(1)
    assert link.startswith(f"{SIDECAR}/preferences/")
    assert f"Manage preferences: {link}" in mail["text"]
    with Session(engine) as session:
        assert preferences.load(session, urlsplit(link).path.rsplit("/", 1)[1]).message_id == (
            message_id
        )
    for client in client_for(engine):
        page = client.get(urlsplit(link).path)
        assert page.status_code == 200 and "status-reminders" in page.text
