"""The lead form on the sidecar: a submission is stored (202) and its job makes a lead, its alert,
the owners' notification and the matching proposal (both delivered to the sandbox's mailbox); a
repeat gets the same answer, updates the lead and tells nobody again; invalid fields, a big
body, the honeypot, the rate limit, CORS and the hosted form (GET, POST, errors shown again with
the values kept)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.api.forms import RateLimit, WorkspaceCache
from backend.jobs.runner import Runner
from models import Alert, EmailMessage, InboundEvent, Lead, LeadMessage, Workspace
from tests.api.webhook_support import client_for
from tests.email.support import (
    LEAD_FORM_ORIGIN,
    capture_stored_inquiries,
    drain,
    mailbox,
    prepare_lead_form,
    sendgrid_sandbox,  # noqa: F401 (the "sandbox" fixture)
    workspace_with_sendgrid,
)
from tests.support.sandbox_fixtures import RunningSandbox

ORIGIN = LEAD_FORM_ORIGIN
JANE = {
    "name": "Jane Doe",
    "email": " Jane@Example.com ",
    "phone": "+1 555 0100",
    "service_type": "recital media",
    "event_date": "2027-05-03",
    "message": "Could you film our spring recital?",
    "marketing_consent": False,
}
HTML = {"accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def ws(engine: Engine) -> int:
    ws = workspace_with_sendgrid(engine, None)
    prepare_lead_form(engine, ws)
    return ws


@pytest.fixture
def client(engine: Engine, ws: int) -> Iterator[TestClient]:
    yield from client_for(engine)


def _leads(engine: Engine) -> list[Lead]:
    with Session(engine) as session:
        return list(session.scalars(select(Lead).order_by(Lead.id)))


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return len(session.scalars(select(model)).all())


def test_a_lead_its_alert_and_emails_then_a_repeat_updates_it(
    engine: Engine, client: TestClient
) -> None:
    first = client.post("/forms/acme/leads", json=JANE)
    assert first.status_code == 202, first.text
    # The answer means "stored": the inquiry waits in the inbox, its lead is made by its job.
    assert _leads(engine) == [] and _count(engine, InboundEvent) == 1
    assert capture_stored_inquiries(engine) == 1
    (lead,) = _leads(engine)
    assert (lead.email, lead.name, lead.inquiries) == ("jane@example.com", "Jane Doe", 1)
    assert lead.service_type == "recital media" and str(lead.event_date) == "2027-05-03"
    with Session(engine) as session:
        (alert,) = session.scalars(select(Alert)).all()
        assert alert.message == "New lead: Jane Doe \u2013 recital media"
        assert alert.priority == "normal"
        mails = session.scalars(select(EmailMessage).order_by(EmailMessage.id)).all()
        assert [(m.purpose, m.to_email) for m in mails] == [
            ("new_lead_notification", "sam@lakeside.example"),
            ("proposal_sent", "jane@example.com"),
        ]
    again = client.post(
        "/forms/acme/leads",
        data={
            "name": "Jane",
            "email": "jane@example.com",
            "company": "Dance Co",
            "message": "Also May 4?",
        },
    )
    # The same answer as a new address's: the form tells nobody who is already a lead.
    assert again.status_code == 202, again.text
    assert (again.json(), again.headers.get("content-length")) == (
        first.json(),
        first.headers.get("content-length"),
    )
    assert drain(engine, provider_jobs=False) == []  # captured; nothing more to announce
    (lead,) = _leads(engine)
    assert (lead.inquiries, lead.company, lead.name) == (2, "Dance Co", "Jane Doe")
    assert lead.last_inquiry_at is not None
    with Session(engine) as session:
        bodies = session.scalars(select(LeadMessage.body).order_by(LeadMessage.id)).all()
        assert bodies == ["Could you film our spring recital?", "Also May 4?"]
    assert _count(engine, Alert) == 1
    assert _count(engine, EmailMessage) == 2


def test_eight_posts_at_once_make_one_lead(engine: Engine, client: TestClient) -> None:
    start = threading.Barrier(8)
    answers: list[int] = []

    def post() -> None:
        start.wait(timeout=30)
        answers.append(client.post("/forms/acme/leads", json=JANE).status_code)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [202] * 8
    assert drain(engine, provider_jobs=False) == []
    (lead,) = _leads(engine)
    assert lead.inquiries == 8
    assert _count(engine, Alert) == 1 and _count(engine, LeadMessage) == 8
    assert _count(engine, EmailMessage) == 2  # one notification, one proposal


def test_each_invalid_field_has_its_message(engine: Engine, client: TestClient) -> None:
    answer = client.post(
        "/forms/acme/leads",
        json={
            "name": "",
            "email": "jane@",
            "phone": "call me",
            "event_date": "soon",
            "message": "x" * 5001,
            "company": 7,
        },
    )
    assert answer.status_code == 422
    assert set(answer.json()["errors"]) == {
        "name",
        "email",
        "phone",
        "event_date",
        "message",
        "company",
    }
    assert "e-mail" in answer.json()["errors"]["email"]
    assert _leads(engine) == []


def test_a_body_over_16_kib_is_refused(engine: Engine, client: TestClient) -> None:
    answer = client.post("/forms/acme/leads", json={**JANE, "message": "x" * 17_000})
    assert answer.status_code == 413
    assert "16384 bytes" in answer.json()["detail"]
    assert _leads(engine) == []


def test_the_honeypot_answers_success_and_stores_nothing(
    engine: Engine, client: TestClient
) -> None:
    answer = client.post("/forms/acme/leads", json={**JANE, "website": "http://spam.example"})
    assert answer.status_code == 202
    assert _count(engine, InboundEvent) == 0
    assert drain(engine, provider_jobs=False) == []
    assert _leads(engine) == [] and _count(engine, Alert) == 0


def test_an_unknown_workspace_is_404_with_words(client: TestClient) -> None:
    answer = client.post("/forms/nobody/leads", json=JANE)
    assert answer.status_code == 404 and "nobody" in answer.json()["detail"]
    assert client.get("/forms/nobody").status_code == 404


def test_the_rate_limit_answers_429_with_retry_after(engine: Engine, client: TestClient) -> None:
    now = [1000.0]
    client.app.state.lead_rate_limit = RateLimit(limit=2, window=60, clock=lambda: now[0])  # type: ignore[attr-defined]
    for n in range(2):
        assert (
            client.post(
                "/forms/acme/leads", json={**JANE, "email": f"p{n}@example.com"}
            ).status_code
            == 202
        )
    refused = client.post("/forms/acme/leads", json={**JANE, "email": "p9@example.com"})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    now[0] += 61
    assert (
        client.post("/forms/acme/leads", json={**JANE, "email": "p9@example.com"}).status_code
        == 202
    )
    assert capture_stored_inquiries(engine) == 3
    assert len(_leads(engine)) == 3


def test_cors_for_the_workspaces_origins_only(client: TestClient) -> None:
    ask = {"origin": ORIGIN, "access-control-request-method": "POST"}
    allowed = client.options("/forms/acme/leads", headers=ask)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    denied = client.options("/forms/acme/leads", headers={**ask, "origin": "https://evil.example"})
    assert denied.status_code == 204
    assert "access-control-allow-origin" not in denied.headers
    posted = client.post("/forms/acme/leads", json=JANE, headers={"origin": ORIGIN})
    assert posted.headers["access-control-allow-origin"] == ORIGIN
    other = client.post("/forms/acme/leads", json=JANE, headers={"origin": "https://evil.example"})
    assert other.status_code == 202 and "access-control-allow-origin" not in other.headers


def test_the_hosted_form_thanks_or_shows_the_errors_again(
    engine: Engine, client: TestClient
) -> None:
    page = client.get("/forms/acme")
    assert page.status_code == 200
    assert 'action="/forms/acme/leads"' in page.text and "<script" not in page.text
    bad = client.post(
        "/forms/acme/leads",
        data={"name": "<b>Jane</b>", "email": "not-an-address", "message": "Keep me"},
        headers=HTML,
    )
    assert bad.status_code == 422
    assert 'data-testid="error-email"' in bad.text
    assert "Keep me" in bad.text and "&lt;b&gt;Jane&lt;/b&gt;" in bad.text
    assert "<b>Jane</b>" not in bad.text
    good = client.post(
        "/forms/acme/leads",
        data={
            "name": "Jane Doe",
            "email": "jane@example.com",
            "service_type": "recital media",
            "marketing_consent": "on",
        },
        headers=HTML,
    )
    assert good.status_code == 202 and "Thank you" in good.text
    assert capture_stored_inquiries(engine) == 1
    (lead,) = _leads(engine)
    assert lead.marketing_consent is True


def test_the_notification_and_the_proposal_reach_the_mailbox(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    ws = workspace_with_sendgrid(engine, sandbox)
    prepare_lead_form(engine, ws)
    for client in client_for(engine):
        assert client.post("/forms/acme/leads", json=JANE).status_code == 202
    while Runner(engine, "test-worker").run_once().claimed:
        pass
    delivered = sorted((m["to"]["email"], m["subject"]) for m in mailbox(sandbox))
    subjects = {to: [s for t, s in delivered if t == to] for to, _ in delivered}
    (proposal,) = subjects["jane@example.com"]
    assert "Recital media package" in proposal or "proposal" in proposal.lower(), delivered
    # The owner: the lead's notification once (the lead's alert does not mail it again).
    assert len(subjects["sam@lakeside.example"]) == 1, delivered
    assert "viewer@lakeside.example" not in subjects
    with Session(engine) as session:
        sent = session.execute(select(EmailMessage.purpose, EmailMessage.status)).all()
        assert sorted((p, str(s)) for p, s in sent) == [
            ("new_lead_notification", "sent"),
            ("proposal_sent", "sent"),
        ]


def test_the_demo_studios_form_sends_its_proposal(engine: Engine) -> None:
    from backend.demo import seed as demo

    with Session(engine) as session:
        demo.seed(session)
        session.commit()
    for client in client_for(engine):
        assert client.get(f"/forms/{demo.STUDIO}").status_code == 200
        posted = client.post(
            f"/forms/{demo.STUDIO}/leads",
            json={"name": "Ada Lee", "email": "ada@example.com", "service_type": "recital media"},
            headers={"origin": demo.STUDIO_FORM_ORIGINS[0]},
        )
        assert posted.status_code == 202, posted.text
        assert posted.headers["access-control-allow-origin"] == demo.STUDIO_FORM_ORIGINS[0]
    assert drain(engine, provider_jobs=False) == []  # the lead's capture and announcement
    with Session(engine) as session:
        purposes = session.scalars(
            select(EmailMessage.purpose).where(EmailMessage.to_email == "ada@example.com")
        ).all()
        assert purposes == ["proposal_sent"]
        assert session.scalars(
            select(EmailMessage).where(EmailMessage.purpose == "new_lead_notification")
        ).all()


def test_the_proposal_goes_without_consent_but_not_after_an_unsubscribe(
    engine: Engine, ws: int, client: TestClient
) -> None:
    from backend.email import service

    with Session(engine) as session:
        service.suppress(
            session,
            workspace_id=ws,
            email="late@example.com",
            groups=["marketing"],
            reason="unsubscribe",
        )
        session.commit()
    for email in ("early@example.com", "late@example.com"):
        assert client.post("/forms/acme/leads", json={**JANE, "email": email}).status_code == 202
    assert drain(engine, provider_jobs=False) == []  # the leads' capture and announcements
    with Session(engine) as session:
        proposals = session.execute(
            select(EmailMessage.to_email, EmailMessage.status)
            .where(EmailMessage.purpose == "proposal_sent")
            .order_by(EmailMessage.to_email)
        ).all()
    assert [(to, str(status)) for to, status in proposals] == [
        ("early@example.com", "queued"),
        ("late@example.com", "skipped"),
    ]


def test_the_hosted_forms_honeypot_thanks_and_stores_nothing(
    engine: Engine, client: TestClient
) -> None:
    answer = client.post(
        "/forms/acme/leads",
        data={"name": "Bot", "email": "bot@example.com", "website": "http://spam.example"},
        headers=HTML,
    )
    assert answer.status_code == 202 and "Thank you" in answer.text
    assert _count(engine, InboundEvent) == 0
    assert _leads(engine) == []


def test_a_workspace_looked_up_is_kept_two_seconds(engine: Engine, ws: int) -> None:
    """The form's burst costs one look-up a workspace; a change of its origins shows after the
    cache's TTL (the clock moved by hand)."""
    now = [100.0]
    cache = WorkspaceCache(clock=lambda: now[0])
    first = asyncio.run(cache.get(engine, "acme"))
    assert first is not None and first[0] == ws and ORIGIN in first[3]
    assert asyncio.run(cache.get(engine, "nobody")) is None
    with Session(engine) as session:
        workspace = session.get(Workspace, ws)
        assert workspace is not None
        workspace.lead_form_origins = ["https://new.example"]
        session.commit()
    now[0] += WorkspaceCache.TTL - 0.1
    kept = asyncio.run(cache.get(engine, "acme"))
    assert kept is not None and ORIGIN in kept[3]
    now[0] += 0.2
    fresh = asyncio.run(cache.get(engine, "acme"))
    assert fresh is not None and fresh[3] == ["https://new.example"]
