"""Signed links on the sidecar: ``/x/{token}`` shows its proposal and records the visit; a lead
without consent sees no offers; a tampered or an expired link gets the friendly page (no
trace) whose form mails a fresh link only to the right address, answering the same otherwise;
another workspace's ids in a token reach nothing."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.api import links as links_api
from backend.email import links
from models import EmailMessage, EngagementEvent, Lead, OutboxJob, ProposalTemplate
from tests.api.webhook_support import client_for
from tests.email.links_support import (
    OFFER_TITLE,
    PROPOSAL_BODY,
    make,
    signed_ago,
    tampered,
)
from tests.email.support import drain

DAY = 24 * 3600
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    yield from client_for(engine)


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _fresh_messages(engine: Engine) -> list[EmailMessage]:
    with Session(engine) as session:
        return list(
            session.scalars(select(EmailMessage).where(EmailMessage.purpose == "fresh_link"))
        )


def test_a_link_shows_its_proposal_and_records_the_visit(
    engine: Engine, client: TestClient
) -> None:
    made = make(engine, consent=True)
    page = client.get(f"/x/{made.token()}")
    assert page.status_code == 200
    assert "Recital media package (acme)" in page.text and PROPOSAL_BODY in page.text
    assert "link-offers" in page.text and OFFER_TITLE in page.text
    with Session(engine) as session:
        (visit,) = session.scalars(select(EngagementEvent)).all()
        assert (visit.workspace_id, visit.source, visit.name) == (
            made.workspace_id,
            "link",
            "link.visited",
        )
        assert (visit.subject_type, visit.subject_id) == ("lead", made.lead_id)
        assert session.get_one(Lead, made.lead_id).status == "proposal_viewed"


@pytest.mark.parametrize("suppressed", [(), ("marketing",)], ids=["no-consent", "unsubscribed"])
def test_without_consent_the_page_shows_generic_content(
    engine: Engine, client: TestClient, suppressed: tuple[str, ...]
) -> None:
    # No consent at all, or consent withdrawn by an unsubscribe from offers.
    made = make(engine, consent=bool(suppressed), suppressed=suppressed)
    page = client.get(f"/x/{made.token()}")
    assert page.status_code == 200
    assert PROPOSAL_BODY in page.text  # what they asked for still shows
    assert OFFER_TITLE not in page.text and "link-offers" not in page.text
    assert "link-generic" in page.text
    with Session(engine) as session:
        (visit,) = session.scalars(select(EngagementEvent)).all()
        assert visit.properties["marketing_shown"] is False


def test_the_page_escapes_what_the_business_typed(engine: Engine, client: TestClient) -> None:
    made = make(engine)
    with Session(engine) as session:
        session.get_one(ProposalTemplate, made.template_id).body = "<script>alert(1)</script>"
        session.commit()
    page = client.get(f"/x/{made.token()}")
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;" in page.text


@pytest.mark.parametrize(
    ("which", "status", "title"),
    [
        ("tampered", 400, "This link does not work"),
        ("expired", 410, "This link has expired"),
        ("made-up", 400, "This link does not work"),
    ],
)
def test_a_tampered_or_expired_link_gets_the_friendly_page(
    engine: Engine, client: TestClient, which: str, status: int, title: str
) -> None:
    made = make(engine)
    token = {
        "tampered": tampered(made.token()),
        "expired": signed_ago(made.link(), 31 * DAY),
        "made-up": "not-a-token",
    }[which]
    page = client.get(f"/x/{token}")
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert title in page.text and "fresh-link-button" in page.text
    assert f'action="/x/{token}/fresh"' in page.text
    assert "Traceback" not in page.text and PROPOSAL_BODY not in page.text
    assert _count(engine, EngagementEvent) == 0


def test_the_fresh_link_form_mails_only_the_right_address_and_answers_the_same(
    engine: Engine, client: TestClient
) -> None:
    made = make(engine)
    expired = signed_ago(made.link(), 31 * DAY)
    # Four asks and the right one: within the rate limit (five per ten minutes).
    answers = [
        client.post(f"/x/{expired}/fresh", content=body, headers=FORM)
        for body in (
            b"email=someone%40else.example",
            b"email=",
            b"\xff\xfe",
        )
    ]
    answers.append(
        client.post(
            f"/x/{tampered(expired)}/fresh", content=b"email=jane%40example.com", headers=FORM
        )
    )
    assert _fresh_messages(engine) == []
    right = client.post(f"/x/{expired}/fresh", content=b"email=Jane%40Example.com", headers=FORM)
    assert {(a.status_code, a.text) for a in answers} == {(right.status_code, right.text)}
    assert right.status_code == 200 and links_api.ANSWER in right.text
    (message,) = _fresh_messages(engine)
    assert (message.workspace_id, message.to_email) == (made.workspace_id, made.email)
    assert _count(engine, OutboxJob) == 1
    # The fresh link works.
    fresh = urlsplit(message.context["link_url"]).path
    assert client.get(fresh).status_code == 200


def test_the_fresh_link_form_is_rate_limited(engine: Engine, client: TestClient) -> None:
    made = make(engine)
    token = signed_ago(made.link(), 31 * DAY)
    statuses = [
        client.post(f"/x/{token}/fresh", content=b"email=x%40y.example", headers=FORM).status_code
        for _ in range(links_api.RATE_LIMIT + 1)
    ]
    assert statuses == [200] * links_api.RATE_LIMIT + [429]
    last = client.post(f"/x/{token}/fresh", content=b"email=jane%40example.com", headers=FORM)
    assert last.status_code == 429 and int(last.headers["retry-after"]) > 0
    assert _fresh_messages(engine) == []


def test_another_workspace_s_ids_reach_nothing(engine: Engine, client: TestClient) -> None:
    mine = make(engine, slug="mine")
    theirs = make(engine, slug="theirs", email="jane@theirs.example")
    # Signed by us, naming my workspace with their lead and template.
    crossed = mine.token(subject_id=theirs.lead_id, target_id=theirs.template_id)
    page = client.get(f"/x/{crossed}")
    assert page.status_code == 404 and "This link no longer works" in page.text
    assert "fresh-link-button" not in page.text  # what is gone stays gone
    assert "theirs" not in page.text and PROPOSAL_BODY not in page.text
    asked = client.post(f"/x/{crossed}/fresh", content=b"email=jane%40theirs.example", headers=FORM)
    assert asked.status_code == 200
    assert _count(engine, EngagementEvent) == 0 and _fresh_messages(engine) == []
    with Session(engine) as session:
        assert session.get_one(Lead, theirs.lead_id).status == "new"


def test_an_unpublished_proposal_s_link_no_longer_works(engine: Engine, client: TestClient) -> None:
    made = make(engine)
    with Session(engine) as session:
        session.get_one(ProposalTemplate, made.template_id).published = False
        session.commit()
    page = client.get(f"/x/{made.token()}")
    assert page.status_code == 404 and PROPOSAL_BODY not in page.text
    assert _count(engine, EngagementEvent) == 0


def test_the_proposal_mailed_to_a_new_lead_links_to_its_page(
    engine: Engine, client: TestClient
) -> None:
    made = make(engine)  # the workspace "acme" with a published "recital media" template
    answer = client.post(
        "/forms/acme/leads",
        json={"name": "Sam Lee", "email": "sam@example.com", "service_type": "recital media"},
    )
    assert answer.status_code == 202, answer.text
    # The inquiry's capture, then the lead's announcement: the proposal.
    assert drain(engine, provider_jobs=False) == []
    with Session(engine) as session:
        (proposal,) = session.scalars(
            select(EmailMessage).where(EmailMessage.purpose == "proposal_sent")
        ).all()
        lead = session.scalars(select(Lead).where(Lead.email == "sam@example.com")).one()
    url = proposal.context["proposal_url"]
    # Opaque ids only: the token names the workspace, the lead and the template.
    assert links.read(url.rsplit("/x/", 1)[1]) == made.link(subject_id=lead.id)
    page = client.get(urlsplit(url).path)
    assert page.status_code == 200 and PROPOSAL_BODY in page.text
    assert OFFER_TITLE not in page.text  # no marketing consent given on the form
    with Session(engine) as session:
        (visit,) = session.scalars(select(EngagementEvent)).all()
        assert (visit.workspace_id, visit.subject_id) == (made.workspace_id, lead.id)
