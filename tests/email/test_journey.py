"""Issue 15's e-mail journey end to end, every hop real: a visitor posts the lead form to the
sidecar over HTTP; the outbox sends the owner's notification and the lead's proposal through the
SendGrid SDK to the sandbox; a person acts in the sandbox's mailbox (open, a tracked click,
bounce, spam report), and the sandbox posts signed Event Webhook batches to the sidecar, whose
inbox applies them: message statuses, the lead's status, suppressions and sequences."""

from __future__ import annotations

import collections
import html
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.email import service
from models import (
    Alert,
    EmailMessage,
    EmailSequence,
    EmailStatus,
    EmailSuppression,
    EngagementEvent,
    InboundEvent,
    Lead,
    SequenceEnrolment,
)
from tests.email.support import (
    drain,
    mailbox,
    prepare_lead_form,
    sendgrid_sandbox,  # noqa: F401 (the "sandbox" fixture)
    sidecar_receiving_events,
    workspace_with_sendgrid,
)
from tests.support.sandbox_fixtures import RunningSandbox

JANE = {
    "name": "Jane Doe",
    "email": "Jane@Example.com",
    "service_type": "recital media",
    "message": "Could you film our spring recital?",
}
OWNER = "sam@lakeside.example"


@dataclass
class Hub:
    sidecar: str
    sandbox: RunningSandbox
    engine: Engine
    workspace_id: int


@pytest.fixture
def hub(engine: Engine, sandbox: RunningSandbox) -> Iterator[Hub]:
    """The lead form's workspace, its SendGrid the sandbox, whose events go to the sidecar."""
    ws = workspace_with_sendgrid(engine, sandbox)
    prepare_lead_form(engine, ws)
    with sidecar_receiving_events(engine, sandbox, ws) as sidecar:
        yield Hub(sidecar, sandbox, engine, ws)


def _drain(engine: Engine) -> None:
    assert drain(engine) == []


def _received(engine: Engine) -> collections.Counter[str]:
    with Session(engine) as session:
        return collections.Counter(
            dict(
                session.execute(
                    select(InboundEvent.event_type, func.count())
                    .where(InboundEvent.provider == "sendgrid")
                    .group_by(InboundEvent.event_type)
                ).all()
            )
        )


def _apply_events(hub: Hub, **expected: int) -> None:
    """Wait until the sidecar has stored this many SendGrid events of each kind (in all, since
    the test began), then let the outbox apply them."""
    deadline = time.monotonic() + 20
    while not all(_received(hub.engine)[kind] >= n for kind, n in expected.items()):
        assert time.monotonic() < deadline, (expected, _received(hub.engine))
        time.sleep(0.05)
    assert {k: _received(hub.engine)[k] for k in expected} == expected  # no more than that
    _drain(hub.engine)


def _submit(hub: Hub, **fields: Any) -> int:
    """The lead form posted over HTTP, the resulting mail sent and its SendGrid events applied;
    returns the lead's id."""
    answer = httpx.post(f"{hub.sidecar}/forms/acme/leads", json={**JANE, **fields}, timeout=10)
    assert answer.status_code == 202, answer.text
    _drain(hub.engine)
    with Session(hub.engine) as session:
        return session.scalars(select(Lead.id).order_by(Lead.id.desc())).first() or 0


def _emails(engine: Engine) -> dict[str, EmailMessage]:
    """This test's messages by recipient and purpose ("to/purpose")."""
    with Session(engine) as session:
        rows = session.scalars(select(EmailMessage).order_by(EmailMessage.id)).all()
        return {f"{r.to_email}/{r.purpose}": r for r in rows}


def _mail_to(sandbox: RunningSandbox, address: str) -> dict[str, Any]:
    (mail,) = [m for m in mailbox(sandbox) if m["to"]["email"] == address]
    return mail


def _press(hub: Hub, mail: dict[str, Any], kind: str) -> None:
    """A person's button on the sandbox's message page (open, bounce, spamreport...)."""
    page = httpx.get(f"{hub.sandbox.url}/sendgrid/_pages/mailbox/{mail['id']}", timeout=10)
    action = f"/sendgrid/_pages/mailbox/{mail['id']}/events/{kind}"
    assert f"action='{action}'" in page.text, page.text
    pressed = httpx.post(f"{hub.sandbox.url}{action}", timeout=10)
    assert pressed.status_code == 303, pressed.text


def _status(engine: Engine, message_id: int) -> str:
    with Session(engine) as session:
        return session.get_one(EmailMessage, message_id).status


def _lead_status(engine: Engine, lead_id: int) -> str:
    with Session(engine) as session:
        return session.get_one(Lead, lead_id).status


def _follow(hub: Hub, mail: dict[str, Any], target: str) -> None:
    """Click the message's link to ``target`` on its sandbox page: through the sandbox's click
    tracking (as SendGrid rewrites links), which redirects to the link."""
    page = httpx.get(f"{hub.sandbox.url}/sendgrid/_pages/mailbox/{mail['id']}", timeout=10)
    links = [
        html.unescape(link)
        for link in re.findall(r'href="([^"]*/_pages/click/[^"]*)"', page.text)
        if target in unquote(html.unescape(link))
    ]
    assert links, page.text
    followed = httpx.get(links[0], timeout=10)
    assert followed.status_code == 302 and target in followed.headers["location"]


def _timeline(engine: Engine, lead_id: int) -> list[str]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(EngagementEvent.name)
                .where(
                    EngagementEvent.subject_type == "lead", EngagementEvent.subject_id == lead_id
                )
                .order_by(EngagementEvent.occurred_at, EngagementEvent.id)
            )
        )


def test_the_form_makes_a_lead_and_the_mailbox_shows_both_emails_then_open_and_click(
    hub: Hub,
) -> None:
    lead_id = _submit(hub)
    with Session(hub.engine) as session:
        lead = session.get_one(Lead, lead_id)
        assert (lead.email, lead.name, lead.status) == ("jane@example.com", "Jane Doe", "new")
        (alert,) = session.scalars(select(Alert)).all()
        assert alert.message == "New lead: Jane Doe \u2013 recital media"

    # The sandbox's mailbox: exactly the owner's notification and the lead's proposal.
    assert sorted(m["to"]["email"] for m in mailbox(hub.sandbox)) == [
        "jane@example.com",
        OWNER,
    ]
    emails = _emails(hub.engine)
    assert sorted(emails) == [
        "jane@example.com/proposal_sent",
        f"{OWNER}/new_lead_notification",
    ]
    notification = _mail_to(hub.sandbox, OWNER)
    proposal = _mail_to(hub.sandbox, "jane@example.com")
    assert "Jane Doe" in notification["subject"] + notification["text"]
    assert proposal["subject"].startswith("Recital media package")
    assert "Two cameras, edited film within two weeks." in proposal["text"]
    ours = {m["custom_args"]["hub_message_id"] for m in (notification, proposal)}
    assert ours == {str(e.id) for e in emails.values()}
    for mail in (notification, proposal):
        row = emails[f"{mail['to']['email']}/{mail['categories'][0]}"]
        assert row.sendgrid_message_id == mail["x_message_id"] and row.sent_at is not None

    # SendGrid's processed and delivered events for both, signed, through the sidecar.
    _apply_events(hub, processed=2, delivered=2)
    proposal_id = emails["jane@example.com/proposal_sent"].id
    notification_id = emails[f"{OWNER}/new_lead_notification"].id
    assert _status(hub.engine, proposal_id) == EmailStatus.DELIVERED
    assert _status(hub.engine, notification_id) == EmailStatus.DELIVERED
    assert _lead_status(hub.engine, lead_id) == "new"

    # The owner opens the notification and follows its link to the lead's page: their doing,
    # not the lead's, so the lead's status and timeline do not move.
    _press(hub, notification, "open")
    _follow(hub, notification, "/leads/")
    _apply_events(hub, processed=2, delivered=2, open=1, click=1)
    assert _status(hub.engine, notification_id) == EmailStatus.CLICKED
    assert _lead_status(hub.engine, lead_id) == "new"
    assert _timeline(hub.engine, lead_id) == ["email.delivered"]

    # Jane opens the proposal in the mailbox: the message is opened, the lead viewed it.
    _press(hub, proposal, "open")
    _apply_events(hub, processed=2, delivered=2, open=2, click=1)
    assert _status(hub.engine, proposal_id) == EmailStatus.OPENED
    assert _lead_status(hub.engine, lead_id) == "proposal_viewed"

    # ...and follows the proposal's link, tracked by the sandbox as SendGrid tracks it.
    _follow(hub, proposal, "/x/")
    _apply_events(hub, processed=2, delivered=2, open=2, click=2)
    with Session(hub.engine) as session:
        opened = session.get_one(EmailMessage, proposal_id)
        assert (opened.status, opened.open_count, opened.click_count) == (
            EmailStatus.CLICKED,
            1,
            1,
        )
        assert opened.first_open_at is not None and opened.first_click_at is not None
        assert session.get_one(Lead, lead_id).status == "engaged"
    assert _timeline(hub.engine, lead_id) == ["email.delivered", "email.opened", "email.clicked"]


def test_a_bounce_in_the_mailbox_suppresses_the_address_and_the_next_send_is_skipped(
    hub: Hub,
) -> None:
    lead_id = _submit(hub)
    _apply_events(hub, processed=2, delivered=2)
    proposal = _mail_to(hub.sandbox, "jane@example.com")
    _press(hub, proposal, "bounce")
    _apply_events(hub, processed=2, delivered=2, bounce=1)
    proposal_id = int(proposal["custom_args"]["hub_message_id"])
    assert _status(hub.engine, proposal_id) == EmailStatus.BOUNCED
    assert _lead_status(hub.engine, lead_id) == "email_invalid"
    with Session(hub.engine) as session:
        suppressions = session.execute(
            select(EmailSuppression.email, EmailSuppression.purpose_group, EmailSuppression.reason)
        ).all()
        assert [tuple(s) for s in suppressions] == [("jane@example.com", "all", "bounce")]
        assert session.scalars(select(Alert.type).where(Alert.type == "email.lead_bounced")).all()

    # The next mail to her (a reminder, as a sequence's step would queue it) is skipped.
    with Session(hub.engine) as session:
        reminder = service.queue_email(
            session,
            workspace_id=hub.workspace_id,
            purpose="proposal_reminder",
            to_email="jane@example.com",
            to_name="Jane Doe",
            subject_type="lead",
            subject_id=lead_id,
            context={
                "business_name": "Lakeside Media",
                "recipient_name": "Jane",
                "proposal_title": "Recital media package",
                "proposal_url": "https://p.example/1",
            },
            dedupe_key="reminder-after-bounce",
        )
        session.commit()
        reminder_id = reminder.id
    _drain(hub.engine)
    with Session(hub.engine) as session:
        skipped = session.get_one(EmailMessage, reminder_id)
        assert skipped.status == EmailStatus.SKIPPED
        assert (skipped.skip_reason or "").startswith("Suppressed (bounce, all e-mail)")
        assert skipped.sendgrid_message_id is None and skipped.sent_at is None
    # Nothing more reached Jane; the owner got the bounce's alert.
    assert sorted((m["to"]["email"], m["categories"][0]) for m in mailbox(hub.sandbox)) == [
        ("jane@example.com", "proposal_sent"),
        (OWNER, "alert_notification"),
        (OWNER, "new_lead_notification"),
    ]


def test_a_spam_report_in_the_mailbox_stops_the_leads_sequences(hub: Hub) -> None:
    lead_id = _submit(hub)
    with Session(hub.engine) as session:
        sequence = EmailSequence(
            workspace_id=hub.workspace_id, name="Follow-up", trigger="lead_created"
        )
        session.add(sequence)
        session.flush()
        session.add(
            SequenceEnrolment(
                workspace_id=hub.workspace_id, sequence_id=sequence.id, lead_id=lead_id
            )
        )
        session.commit()
    _apply_events(hub, processed=2, delivered=2)
    _press(hub, _mail_to(hub.sandbox, "jane@example.com"), "spamreport")
    _apply_events(hub, processed=2, delivered=2, spamreport=1)
    with Session(hub.engine) as session:
        enrolment = session.scalars(select(SequenceEnrolment)).one()
        assert (enrolment.status, enrolment.stop_reason) == (
            "stopped",
            "The lead reported our mail as spam",
        )
        assert session.get_one(Lead, lead_id).status == "unsubscribed"
        assert [
            (s.email, s.purpose_group, s.reason) for s in session.scalars(select(EmailSuppression))
        ] == [("jane@example.com", "all", "spam_report")]
        alert = session.scalars(select(Alert).where(Alert.type == "email.lead_spam_report")).one()
        assert "1 sequence(s) stopped" in alert.message
