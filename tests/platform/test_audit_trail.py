"""The audit trail as the manage page shows it: members by name and email, changes in words,
and nobody named from outside the workspace."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from backend.connections import service as connections
from backend.platform import audit, audit_trail
from backend.platform.actors import Actor
from models import Membership, Role
from tests import factories
from tests.support.fakes import CONTEXT, GOOD_KEY, catalog
from tests.support.steps import in_steps

TARGET = "integration:sendgrid"


def test_trail_names_members_and_says_what_changed_in_words(session: Session) -> None:
    ws = factories.workspace(session)
    olive = factories.member(session, ws, email="olive@acme.example", role=Role.OWNER)
    adam = factories.member(session, ws, email="adam@acme.example", role=Role.ADMIN)
    owner = Actor(operator_id=olive.id, workspace_id=ws.id, role=Role.OWNER)
    admin = Actor(operator_id=adam.id, workspace_id=ws.id, role=Role.ADMIN)
    cat = catalog()
    in_steps(
        session,
        lambda engine: connections.connect_with_keys(
            engine,
            actor=owner,
            provider_slug="sendgrid",
            credentials={"api_key": GOOD_KEY},
            context=CONTEXT,
            catalog=cat,
        ),
    )
    connections.update_settings(
        session,
        actor=admin,
        provider_slug="sendgrid",
        settings={"sender": "hi@shop.example"},
        context=CONTEXT,
        catalog=cat,
    )
    in_steps(
        session,
        lambda engine: connections.disconnect(
            engine, actor=owner, provider_slug="sendgrid", revoke=lambda _: None
        ),
    )

    entries = audit_trail.for_target(session, workspace_id=ws.id, target=TARGET)
    assert [(e.who, e.action, e.summary) for e in reversed(entries)] == [
        (
            "olive (olive@acme.example)",
            "Connected with keys",
            "Connection test passed; status active; api key ••••1234; account acct_1.",
        ),
        ("adam (adam@acme.example)", "Changed settings", "Changed: sender."),
        (
            "olive (olive@acme.example)",
            "Disconnected",
            "Keys wiped and access revoked at the provider.",
        ),
    ]


def test_trail_names_nobody_outside_the_workspace(session: Session) -> None:
    ws = factories.workspace(session)
    other = factories.workspace(session, slug="other")
    stranger = factories.member(session, other, email="eve@other.example", role=Role.OWNER)
    leaver = factories.member(session, ws, email="lou@acme.example", role=Role.ADMIN)
    for label in (f"operator:{stranger.id}", f"operator:{leaver.id}", "scheduler"):
        audit.record(
            session,
            actor=label,
            workspace_id=ws.id,
            action="integration.refresh_failed",
            target=TARGET,
            details={"status": "error", "error": "invalid_grant"},
        )
    session.execute(delete(Membership).where(Membership.operator_id == leaver.id))
    session.flush()

    whos = [e.who for e in audit_trail.for_target(session, workspace_id=ws.id, target=TARGET)]
    assert whos == [
        "Automatic (scheduler)",
        audit_trail.FORMER_MEMBER,
        audit_trail.FORMER_MEMBER,
    ]
    assert not any("eve" in who or "lou" in who for who in whos)


def test_unknown_details_read_as_pairs_never_as_a_dict() -> None:
    text = audit_trail.describe(
        "jobs.replay", {"jobs": 3, "job_id": None, "kinds": ["a", "b"], "extra": {"x_y": 1}}
    )
    assert text == "Jobs: 3; Kinds: a, b; Extra: x y 1"


def test_a_refused_key_and_the_recovery_read_as_sentences() -> None:
    refused = audit_trail.describe(
        "integration.refused", {"status": "error", "error": "Stripe refused the key (401)"}
    )
    assert refused.startswith("The provider said: Stripe refused the key (401)")
    assert "{" not in refused and "check or replace the key" in refused
    recovered = audit_trail.describe("integration.recovered", {"status": "active", "was": "x"})
    assert recovered == "A call succeeded again; status active (it was: x)."
