"""Connections: connect with keys (role, plan, shape, test), masks, test, disconnect, the view."""

from __future__ import annotations

import dataclasses
import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.connections import credentials, masks, rows, views
from backend.connections import service as connections
from backend.integrations.base import ProviderContext
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, PermissionDenied, PlanRequired
from models import AuditLog, Integration, IntegrationStatus, Plan, Role
from tests import factories
from tests.support.fakes import CONTEXT, GOOD_KEY, FakeCatalog, catalog
from tests.support.steps import in_steps


def _owner(session: Session, plan: Plan = Plan.PRO, role: Role = Role.OWNER) -> Actor:
    ws = factories.workspace(session, plan=plan)
    return Actor(operator_id=1, workspace_id=ws.id, role=role)


def _connect(
    session: Session, actor: Actor, cat: FakeCatalog, slug: str = "sendgrid", **kw: object
) -> views.ConnectResult:
    params: dict[str, object] = {"credentials": {"api_key": GOOD_KEY}} | kw
    return in_steps(
        session,
        lambda engine: connections.connect_with_keys(
            engine,
            actor=actor,
            provider_slug=slug,
            context=CONTEXT,
            catalog=cat,
            **params,  # type: ignore[arg-type]
        ),
    )


def _test(session: Session, actor: Actor, cat: FakeCatalog) -> views.ConnectResult:
    return in_steps(
        session,
        lambda engine: connections.test(
            engine, actor=actor, provider_slug="sendgrid", context=CONTEXT, catalog=cat
        ),
    )


def _row(session: Session, actor: Actor, slug: str = "sendgrid") -> Integration:
    row = rows.find(session, workspace_id=actor.workspace_id, provider_slug=slug)
    assert row is not None
    return row


def test_owner_connects_with_a_good_key(session: Session) -> None:
    actor, cat = _owner(session), catalog()
    result = _connect(session, actor, cat)
    assert result.ok and result.saved and result.status is IntegrationStatus.ACTIVE
    assert result.masked == {"api_key": "••••1234"}
    row = _row(session, actor)
    assert row.status is IntegrationStatus.ACTIVE and row.connected_at and row.last_checked_at
    assert credentials.unseal(row) == {"api_key": GOOD_KEY}
    assert GOOD_KEY.encode() not in (row.credentials_enc or b"")
    assert row.settings == {"sender": "shop@example.com", "days": 7}


def test_audit_never_holds_the_secret(session: Session) -> None:
    actor, cat = _owner(session), catalog()
    _connect(session, actor, cat)
    entry = session.scalars(select(AuditLog)).one()
    assert entry.action == "integration.connect"
    assert GOOD_KEY not in json.dumps(entry.details)
    assert entry.details["masked"] == {"api_key": "••••1234"}


def test_admin_cannot_connect_but_can_test(session: Session) -> None:
    owner, cat = _owner(session), catalog()
    _connect(session, owner, cat)
    admin = Actor(operator_id=2, workspace_id=owner.workspace_id, role=Role.ADMIN)
    with pytest.raises(PermissionDenied, match="owner"):
        _connect(session, admin, cat)
    assert _test(session, admin, cat).ok


def test_free_plan_is_refused_on_the_server(session: Session) -> None:
    actor, cat = _owner(session, plan=Plan.FREE), catalog()
    with pytest.raises(PlanRequired, match="Sendgrid needs the Pro plan"):
        _connect(session, actor, cat)
    assert cat["sendgrid"].tested == []  # refused before any call


def test_second_payment_provider_on_pro_is_refused(session: Session) -> None:
    actor, cat = _owner(session), catalog()
    _connect(session, actor, cat, slug="stripe")
    cat["sendgrid"].info = dataclasses.replace(cat["sendgrid"].info, payment_provider=True)
    with pytest.raises(PlanRequired, match="one payment provider"):
        _connect(session, actor, cat, slug="sendgrid")
    # Updating the one payment provider it has is fine.
    assert _connect(session, actor, cat, slug="stripe").ok


def test_business_connects_several_payment_providers(session: Session) -> None:
    actor, cat = _owner(session, plan=Plan.BUSINESS), catalog()
    assert _connect(session, actor, cat, slug="stripe").ok
    assert _connect(session, actor, cat, slug="square").ok


def test_publishable_key_gets_a_clear_error_naming_the_field(session: Session) -> None:
    actor, cat = _owner(session), catalog()
    with pytest.raises(InvalidInput, match="publishable") as caught:
        _connect(session, actor, cat, credentials={"api_key": "pk_live_123"})
    assert caught.value.field == "api_key"


def test_missing_field_names_it_without_echoing_values(session: Session) -> None:
    actor, cat = _owner(session), catalog()
    with pytest.raises(InvalidInput, match="Api key") as caught:
        _connect(session, actor, cat, credentials={"account": "x"})
    assert caught.value.field == "api_key"
    with pytest.raises(InvalidInput, match="Days") as bad_setting:
        _connect(session, actor, cat, settings={"days": 500})
    assert "500" not in str(bad_setting.value)


def test_failed_test_saves_nothing(session: Session) -> None:
    actor, cat = _owner(session), catalog()
    result = _connect(session, actor, cat, credentials={"api_key": "key_bad_000000009999"})
    assert not result.ok and not result.saved and "refused" in result.message
    assert rows.find(session, workspace_id=actor.workspace_id, provider_slug="sendgrid") is None


def test_failed_test_can_be_saved_inactive(session: Session) -> None:
    actor, cat = _owner(session), catalog()
    result = _connect(
        session, actor, cat, credentials={"api_key": "key_bad_000000009999"}, save_inactive=True
    )
    assert result.saved and not result.ok
    row = _row(session, actor)
    assert row.status is IntegrationStatus.INACTIVE and row.last_error
    assert views.view(session, actor.workspace_id, cat)[1].state == "connect"


def test_blank_or_masked_secret_keeps_the_stored_one(session: Session) -> None:
    actor, cat = _owner(session), catalog()
    _connect(
        session,
        actor,
        cat,
        credentials={"api_key": GOOD_KEY, "signing_secret": "whsec_abcdefgh1111"},
    )
    result = _connect(
        session,
        actor,
        cat,
        credentials={"api_key": "••••1234", "signing_secret": "", "account": "acct-9"},
        settings={"days": 14},
    )
    assert result.ok
    row = _row(session, actor)
    assert credentials.unseal(row) == {
        "api_key": GOOD_KEY,
        "signing_secret": "whsec_abcdefgh1111",
        "account": "acct-9",
    }
    assert row.settings["days"] == 14
    actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert actions == ["integration.connect", "integration.update"]


def test_test_failure_marks_error_and_a_pass_recovers(session: Session) -> None:
    actor, cat = _owner(session), catalog()
    _connect(session, actor, cat)
    row = _row(session, actor)
    credentials.seal(row, {"api_key": "key_revoked_00005555"})
    failed = _test(session, actor, cat)
    assert not failed.ok and row.status is IntegrationStatus.ERROR and row.last_error
    assert views.view(session, actor.workspace_id, cat)[1].state == "error"
    credentials.seal(row, {"api_key": GOOD_KEY})
    passed = _test(session, actor, cat)
    assert passed.ok and passed.status is IntegrationStatus.ACTIVE and row.last_error is None


def test_disconnect_wipes_secrets_and_keeps_the_row(session: Session) -> None:
    actor, cat = _owner(session), catalog()
    _connect(session, actor, cat)
    revoked: list[dict[str, object]] = []
    in_steps(
        session,
        lambda engine: connections.disconnect(
            engine, actor=actor, provider_slug="sendgrid", revoke=revoked.append
        ),
    )
    row = _row(session, actor)
    assert revoked == [{"api_key": GOOD_KEY}]
    assert row.credentials_enc is None and row.key_id is None
    assert row.status is IntegrationStatus.INACTIVE
    entry = session.scalars(
        select(AuditLog).where(AuditLog.action == "integration.disconnect")
    ).one()
    assert entry.details == {"revoked": "ok"}
    assert masks.masked_view(row, cat) == {}


def test_update_settings_validates_and_audits(session: Session) -> None:
    actor, cat = _owner(session), catalog()
    _connect(session, actor, cat)
    admin = Actor(operator_id=2, workspace_id=actor.workspace_id, role=Role.ADMIN)
    row = connections.update_settings(
        session,
        actor=admin,
        provider_slug="sendgrid",
        settings={"sender": "hi@shop.example"},
        context=CONTEXT,
        catalog=cat,
    )
    assert row.settings == {"sender": "hi@shop.example", "days": 7}
    with pytest.raises(InvalidInput, match="Sender"):
        connections.update_settings(
            session,
            actor=admin,
            provider_slug="sendgrid",
            settings={"sender": "nope"},
            context=CONTEXT,
            catalog=cat,
        )
    viewer = Actor(operator_id=3, workspace_id=actor.workspace_id, role=Role.VIEWER)
    with pytest.raises(PermissionDenied):
        connections.update_settings(
            session,
            actor=viewer,
            provider_slug="sendgrid",
            settings={},
            context=CONTEXT,
            catalog=cat,
        )


def test_view_has_one_tile_per_provider_with_its_state(session: Session) -> None:
    actor, cat = _owner(session), catalog()
    _connect(session, actor, cat)
    tiles = {t.slug: t for t in views.view(session, actor.workspace_id, cat)}
    assert tiles["sendgrid"].state == "connected"
    assert tiles["sendgrid"].masked == {"api_key": "••••1234"}
    assert tiles["stripe"].state == "connect"
    assert tiles["zoho_books"].state == "locked" and tiles["zoho_books"].required_plan == "business"
    assert tiles["shopify"].state == "coming_soon"


def test_free_workspace_sees_every_tile_locked(session: Session) -> None:
    ws = factories.workspace(session, slug="freebie", plan=Plan.FREE)
    tiles = views.view(session, ws.id, catalog())
    assert len(tiles) == 6
    assert {t.state for t in tiles} == {"locked", "coming_soon"}
    stripe = next(t for t in tiles if t.slug == "stripe")
    assert stripe.locked_reason == "Stripe needs the Pro plan."


# -- the provider's own check of its settings (issue 13, item 13) -------------------------------

# Live mode, where an operator's webhook URL is resolved and checked: names here resolve to a
# public address, as shop.example would on the internet.
LIVE = ProviderContext(live=True, sandbox_url=None, resolve=lambda _host, _port: ["8.8.8.8"])


@pytest.mark.parametrize(
    ("slug", "good", "bad", "field", "words"),
    [
        (
            "slack",
            {"alert_channel": "#alerts"},
            {"alert_channel": "gen eral"},
            "alert_channel",
            "A channel is a name like #alerts",
        ),
        (
            "sendgrid",
            {"from_email": "shop@example.com"},
            {"from_email": "shop at example"},
            "from_email",
            "The sender must be an email address",
        ),
        (
            "messenger",
            {"page_id": "1234"},
            {"page_id": "my-page"},
            "page_id",
            "A Page id is a number",
        ),
        (
            "webhooks",
            {"url": "https://shop.example/hooks"},
            {"url": "http://shop.example/hooks"},
            "url",
            "Live mode sends webhooks over https only",
        ),
    ],
)
def test_saving_a_setting_the_provider_refuses_names_the_field_and_keeps_the_old(
    session: Session, slug: str, good: dict[str, str], bad: dict[str, str], field: str, words: str
) -> None:
    actor = _owner(session, plan=Plan.BUSINESS)
    session.add(
        Integration(
            workspace_id=actor.workspace_id,
            provider=slug,
            display_name=slug,
            status=IntegrationStatus.ACTIVE,
            settings=good,
        )
    )
    session.commit()
    with pytest.raises(InvalidInput, match=words) as refused:
        connections.update_settings(
            session, actor=actor, provider_slug=slug, settings=bad, context=LIVE
        )
    assert refused.value.field == field
    session.rollback()
    assert {k: _row(session, actor, slug).settings.get(k) for k in good} == good
    assert not session.scalars(select(AuditLog)).all()
    # What the provider accepts is saved.
    connections.update_settings(
        session, actor=actor, provider_slug=slug, settings=good, context=LIVE
    )


def test_connecting_with_settings_the_provider_refuses_stops_before_any_call(
    session: Session,
) -> None:
    """The same check on connect, when settings come with the keys: refused with the field
    named, before the provider is called (no test logged) and with nothing stored."""
    actor = _owner(session)
    with pytest.raises(InvalidInput, match="A channel is a name") as refused:
        in_steps(
            session,
            lambda engine: connections.connect_with_keys(
                engine,
                actor=actor,
                provider_slug="slack",
                credentials={"bot_token": "xoxb-1-2-abc"},
                settings={"alert_channel": "gen eral"},
                context=LIVE,
            ),
        )
    assert refused.value.field == "alert_channel"
    assert rows.find(session, workspace_id=actor.workspace_id, provider_slug="slack") is None
