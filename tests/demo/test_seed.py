"""The demo seed gives a newcomer two businesses to click through, and is safe to run again."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

import backend.sandbox.stripe as stripe_emulator
from backend.accounts import service as accounts
from backend.connections import service as connections
from backend.connections import views
from backend.demo import seed as demo
from backend.health import page as health_page
from backend.health import rules, tiles
from backend.integrations.base import ProviderContext
from backend.platform.actors import Actor
from backend.sandbox.demo_accounts import REEL_MOMENTS
from models import (
    Alert,
    AlertEvent,
    AlertState,
    Buyer,
    Claim,
    Contract,
    ContractStatus,
    Lead,
    Operator,
    OutboxJob,
    Payment,
    PaymentStatus,
    Plan,
    Role,
    Show,
    ShowItem,
    ShowStatus,
    Workspace,
)
from tests.factories import POLICY
from tests.support.sandbox_fixtures import MakeSandbox
from tests.support.steps import in_steps
from tests.test_config import REAL


def _counts(session: Session) -> dict[str, int]:
    return {
        model.__tablename__: int(session.scalar(select(func.count()).select_from(model)) or 0)
        for model in (
            Workspace,
            Operator,
            Show,
            ShowItem,
            Buyer,
            Claim,
            Lead,
            Contract,
            Payment,
            Alert,
            AlertEvent,
            OutboxJob,
        )
    }


def test_seed_creates_what_the_journeys_need(session: Session) -> None:
    report = demo.seed(session)
    session.commit()
    assert report.created_workspaces == [demo.LIVE_SELLER, demo.STUDIO]
    plans = dict(session.execute(select(Workspace.slug, Workspace.plan)).all())
    assert plans == {demo.LIVE_SELLER: Plan.PRO, demo.STUDIO: Plan.FREE}

    ended = session.scalars(select(Show).where(Show.status == ShowStatus.ENDED)).one()
    buyers = session.scalar(
        select(func.count(func.distinct(Claim.platform_user_id))).where(Claim.show_id == ended.id)
    )
    claims = session.scalar(
        select(func.count()).select_from(Claim).where(Claim.show_id == ended.id)
    )
    unpriced = session.scalar(
        select(func.count())
        .select_from(ShowItem)
        .where(ShowItem.show_id == ended.id, ShowItem.price_cents.is_(None))
    )
    assert buyers is not None and buyers >= 40
    assert claims is not None and claims >= 150
    assert unpriced is not None and unpriced > 0
    assert (
        session.scalar(select(func.count()).select_from(Show).where(Show.status == ShowStatus.LIVE))
        == 1
    )
    assert (session.scalar(select(func.count()).select_from(Lead)) or 0) >= 3
    contract = session.scalars(select(Contract)).one()
    assert contract.status is ContractStatus.SIGNED
    deposit = session.scalars(select(Payment).where(Payment.contract_id == contract.id)).one()
    assert deposit.status is PaymentStatus.PENDING
    assert deposit.amount_cents * 2 == contract.total_cents


def test_seed_gives_the_live_seller_an_open_alert_and_a_resolved_one(session: Session) -> None:
    demo.seed(session)
    session.commit()
    lakeside = session.scalars(select(Workspace).where(Workspace.slug == demo.LIVE_SELLER)).one()
    alerts = session.scalars(select(Alert).order_by(Alert.id)).all()
    assert [(a.workspace_id, a.type, a.state, a.count) for a in alerts] == [
        (lakeside.id, "outbox.lag", AlertState.OPEN, 2),
        (lakeside.id, "inbox.lag", AlertState.RESOLVED, 1),
    ]
    steps = {
        a.type: session.scalars(
            select(AlertEvent.what).where(AlertEvent.alert_id == a.id).order_by(AlertEvent.id)
        ).all()
        for a in alerts
    }
    assert steps["outbox.lag"][:1] == ["raised"] and "recurred" in steps["outbox.lag"]
    assert steps["inbox.lag"][0] == "raised" and "resolve" in steps["inbox.lag"]


def test_seed_twice_changes_nothing(session: Session) -> None:
    demo.seed(session)
    session.commit()
    before = _counts(session)
    session.commit()  # seed hashes its logins' password before its first statement
    report = demo.seed(session)
    session.commit()
    assert report.created_workspaces == []
    assert _counts(session) == before


def test_every_demo_login_works_with_its_role(engine: Engine, session: Session) -> None:
    demo.seed(session)
    session.commit()
    for login in demo.DEMO_LOGINS:
        session.commit()
        result = accounts.login(
            engine, email=login.email, password=demo.DEMO_PASSWORD, policy=POLICY
        )
        slug = session.get_one(Workspace, result.actor.workspace_id).slug
        choices = {
            session.get_one(Workspace, c.workspace_id).slug: c.role
            for c in accounts.workspaces_of(session, operator_id=result.actor.operator_id)
        }
        assert choices[login.workspace] is login.role
        assert slug in choices
    viewers = [d for d in demo.DEMO_LOGINS if d.role is Role.VIEWER]
    assert {v.workspace for v in viewers} == {demo.LIVE_SELLER, demo.STUDIO}


def test_the_demo_stripe_key_is_the_sandbox_lakeside_account() -> None:
    import backend.sandbox.stripe.core as stripe_core
    from backend.demo import seed as demo

    assert demo.SANDBOX_LAKESIDE_STRIPE_KEY == stripe_core.DEMO_SECRET_KEY


def test_the_demo_stripe_account_is_the_sandbox_lakeside_account() -> None:
    from backend.demo import seed as demo
    from backend.sandbox.demo_accounts import LAKESIDE, REEL_MOMENTS

    assert LAKESIDE.stripe_account == demo.SANDBOX_LAKESIDE_STRIPE_ACCOUNT
    assert (LAKESIDE.slug, REEL_MOMENTS.slug) == (demo.LIVE_SELLER, demo.STUDIO)


def test_the_studio_is_refused_the_live_sellers_stripe_account_and_connects_its_own(
    session: Session, make_sandbox: MakeSandbox
) -> None:
    sandbox = make_sandbox(providers=[stripe_emulator])
    demo.seed(session)
    studio = session.scalars(select(Workspace).where(Workspace.slug == demo.STUDIO)).one()
    studio.plan = Plan.PRO  # Settings → Plan: Stripe needs Pro
    owner = Actor(operator_id=1, workspace_id=studio.id, role=Role.OWNER)
    context = ProviderContext(live=False, sandbox_url=sandbox.url)

    def connect(key: str) -> views.ConnectResult:
        return in_steps(
            session,
            lambda engine: connections.connect_with_keys(
                engine,
                actor=owner,
                provider_slug="stripe",
                credentials={"secret_key": key},
                context=context,
            ),
        )

    refused = connect(demo.SANDBOX_LAKESIDE_STRIPE_KEY)
    assert not refused.ok and not refused.saved
    assert "is already connected to the workspace “Lakeside Live Boutique”" in refused.message
    own = connect(REEL_MOMENTS.stripe_secret_key)
    assert own.ok, own.message
    assert own.message == "Connected to Stripe account Reel Moments Studio."


def test_the_demo_is_refused_in_live_mode_and_adds_nothing(
    session: Session, monkeypatch: pytest.MonkeyPatch, hub_env: dict[str, str]
) -> None:
    from backend import config

    hub_env.update({"HUB_PROVIDER_MODE": "live"})
    hub_env.update({f"HUB_{name.upper()}": value for name, value in REAL.items()})
    for key, value in hub_env.items():
        monkeypatch.setenv(key, value)
    config.get_settings.cache_clear()
    before = _counts(session)
    with pytest.raises(demo.LiveModeRefused, match="published password"):
        demo.seed(session)
    session.rollback()
    assert _counts(session) == before


def test_the_live_seller_has_a_week_of_stripe_calls_and_stripe_is_degraded_now(
    session: Session,
) -> None:
    """A newcomer opening Health sees a tile with figures and charts with data at once."""
    started = time.monotonic()
    demo.seed(session)
    session.commit()
    assert time.monotonic() - started < 30  # generous: the point is that it is not minutes
    workspace_id = session.scalars(
        select(Workspace.id).where(Workspace.slug == demo.LIVE_SELLER)
    ).one()
    found = health_page.read(session, workspace_id=workspace_id, window="7d")
    [stripe] = found.tiles
    assert stripe.provider == "stripe" and stripe.status == tiles.DEGRADED
    assert stripe.reason.startswith("Slow")
    assert stripe.window.calls > 1000 and stripe.window.failures > 0
    busy_buckets = [p for p in found.calls if p.rollup.calls]
    assert len(busy_buckets) > len(found.calls) // 2
    # Nothing the alert rules would raise: the demo's alerts are the two it seeds.
    assert rules.failing_providers(session, now=dt.datetime.now(dt.UTC)) == []


def test_the_demo_inbound_parse_secrets_are_the_sandbox_demo_accounts(session: Session) -> None:
    """The sandbox's Reply button posts to a demo workspace with the secret it knows: the one
    the seed gives that workspace."""
    from backend.sandbox.demo_accounts import DEMO_WORKSPACES

    demo.seed(session)
    session.commit()
    rows = session.execute(select(Workspace.slug, Workspace.inbound_parse_token)).all()
    tokens = {slug: token for slug, token in rows}
    assert {d.slug: d.inbound_parse_token for d in DEMO_WORKSPACES} == tokens
    assert tokens == demo.SANDBOX_INBOUND_PARSE_TOKENS
