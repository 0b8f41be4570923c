"""Signed links (backend/email/links.py): the consent rule, what a token carries, expiry per
kind (an expired token still names its link only because its signature holds), one visit per
token per minute, and the fresh link mailed only to the link's own person."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from itsdangerous import base64_decode
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.email import links, preferences, purposes, unsubscribe
from models import EmailMessage, EngagementEvent, Lead, utcnow
from tests.email.links_support import make, signed_ago, tampered

DAY = 24 * 3600


@pytest.mark.parametrize(
    ("consent", "groups", "shown"),
    [
        (True, set(), True),
        (False, set(), False),
        (True, {"marketing"}, False),  # an unsubscribe withdraws consent given earlier
        (True, {"all"}, False),  # a bounce or a spam report
        (True, {"reminders"}, True),  # another group says nothing about offers
        (False, {"reminders"}, False),
    ],
)
def test_marketing_is_shown_only_with_consent_and_no_marketing_suppression(
    consent: bool, groups: set[str], shown: bool
) -> None:
    assert links.may_show_marketing(marketing_consent=consent, suppressed_groups=groups) is shown


def test_a_token_carries_opaque_ids_only() -> None:
    link = links.Link(7, "proposal", "lead", 42, 9, message_id=3)
    token = links.token_for(link)
    payload = json.loads(base64_decode(token.split(".")[0]))
    assert payload == {"w": 7, "k": "proposal", "s": "lead", "i": 42, "t": 9, "m": 3}
    assert links.read(token) == link


def test_expiry_is_the_kind_s_and_an_expired_token_still_names_its_link() -> None:
    link = links.Link(7, "proposal", "lead", 42, 9)
    assert links.KINDS["proposal"].max_age == 30 * DAY
    assert links.read(signed_ago(link, 29 * DAY)) == link
    with pytest.raises(links.LinkExpired) as expired:
        links.read(signed_ago(link, 31 * DAY))
    assert expired.value.link == link


def test_a_tampered_or_foreign_token_is_trusted_for_nothing() -> None:
    link = links.Link(7, "proposal", "lead", 42, 9)
    for token in (
        tampered(links.token_for(link)),
        tampered(signed_ago(link, 31 * DAY)),  # expired *and* changed: not even its link
        "made-up",
        "",
    ):
        with pytest.raises(links.LinkInvalid):
            links.read(token)
    # Our other tokens (an unsubscribe, a preferences link) are not links: each has its salt.
    for other in (unsubscribe.token_for(1, 7), preferences.token_for(1, 7)):
        with pytest.raises(links.LinkInvalid):
            links.read(other)
    # A kind or person a link cannot be made for, even signed by us.
    with pytest.raises(ValueError, match="unknown link kind"):
        links.token_for(links.Link(7, "newsletter", "lead", 42, 9))
    with pytest.raises(links.LinkInvalid):
        links.read(links.token_for(links.Link(7, "proposal", "buyer", 42, 9)))


def test_one_visit_per_token_per_minute_and_the_lead_moves_forward(engine: Engine) -> None:
    made = make(engine)
    token = made.token()
    start = utcnow().replace(second=5, microsecond=0)
    with Session(engine) as session:
        for at in (start, start + dt.timedelta(seconds=30), start + dt.timedelta(seconds=70)):
            page = links.visit(session, token, at=at)
        session.commit()
    assert page.title == "Recital media package (acme)" and page.marketing
    with Session(engine) as session:
        visits = session.scalars(select(EngagementEvent).order_by(EngagementEvent.id)).all()
        assert [(v.source, v.name, v.subject_type, v.subject_id) for v in visits] == [
            ("link", "link.visited", "lead", made.lead_id)
        ] * 2
        assert visits[0].properties == {
            "kind": "proposal",
            "target_id": made.template_id,
            "marketing_shown": True,
        }
        assert session.get_one(Lead, made.lead_id).status == "proposal_viewed"


def test_a_status_set_by_hand_is_left_alone(engine: Engine) -> None:
    made = make(engine)
    with Session(engine) as session:
        session.get_one(Lead, made.lead_id).status = "won"
        session.commit()
        links.visit(session, made.token())
        session.commit()
        assert session.get_one(Lead, made.lead_id).status == "won"


def test_a_fresh_link_goes_only_to_the_link_s_person(engine: Engine) -> None:
    made = make(engine)
    expired = signed_ago(made.link(), 31 * DAY)
    with Session(engine) as session:
        assert not links.request_fresh(session, expired, "someone@else.example")
        assert not links.request_fresh(session, tampered(expired), made.email)
        assert links.request_fresh(session, expired, "  JANE@example.com ")
        assert links.request_fresh(session, expired, made.email)  # again: one message
        session.commit()
        (message,) = session.scalars(select(EmailMessage)).all()
    assert (message.purpose, message.to_email) == ("fresh_link", made.email)
    assert (message.subject_type, message.subject_id) == ("lead", made.lead_id)
    assert purposes.purpose(message.purpose).transactional
    fresh = message.context["link_url"].rsplit("/x/", 1)[1]
    assert links.read(fresh) == made.link()
    assert message.context["valid_days"] == 30
