"""Connecting Stripe through the real provider and SDK against the sandbox: a restricted key
is tested for the writes the product makes, and one Stripe account serves one workspace."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

import backend.sandbox.stripe as stripe_emulator
from backend.connections import credentials, views
from backend.connections import rows as connection_rows
from backend.connections import service as connections
from backend.integrations.base import ProviderContext
from backend.platform.actors import Actor
from models import Integration, IntegrationStatus, Plan, Role
from tests import factories
from tests.sandbox.stripe_support import new_account
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox
from tests.support.steps import in_steps


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[stripe_emulator])


def _owner(session: Session, name: str) -> Actor:
    ws = factories.workspace(session, slug=name.lower().replace(" ", "-"), plan=Plan.PRO)
    ws.name = name
    return Actor(operator_id=1, workspace_id=ws.id, role=Role.OWNER)


def _connect(
    session: Session, sandbox: RunningSandbox, actor: Actor, key: str, **kw: object
) -> views.ConnectResult:
    return in_steps(
        session,
        lambda engine: connections.connect_with_keys(
            engine,
            actor=actor,
            provider_slug="stripe",
            credentials={"secret_key": key},
            context=ProviderContext(live=False, sandbox_url=sandbox.url),
            **kw,  # type: ignore[arg-type]
        ),
    )


def _test(session: Session, actor: Actor, context: ProviderContext) -> views.ConnectResult:
    return in_steps(
        session,
        lambda engine: connections.test(
            engine, actor=actor, provider_slug="stripe", context=context
        ),
    )


def _disconnect(session: Session, actor: Actor) -> None:
    in_steps(
        session,
        lambda engine: connections.disconnect(engine, actor=actor, provider_slug="stripe"),
    )


def _stripe_row(session: Session, actor: Actor) -> Integration | None:
    return connection_rows.find(session, workspace_id=actor.workspace_id, provider_slug="stripe")


def test_a_read_only_restricted_key_is_not_saved_and_the_missing_writes_are_named(
    session: Session, sandbox: RunningSandbox
) -> None:
    owner = _owner(session, "Lakeside Live Boutique")
    keys = new_account(sandbox.url, restricted_permissions={"*": "read"})
    result = _connect(session, sandbox, owner, keys["restricted_key"])
    assert not result.ok and not result.saved
    assert result.message.startswith(
        "This restricted key may not write Customers, Invoices and Webhook Endpoints."
    )
    assert _stripe_row(session, owner) is None
    # Saved inactive on request, it stays off: no webhook registration is queued for it.
    kept = _connect(session, sandbox, owner, keys["restricted_key"], save_inactive=True)
    assert kept.saved and kept.status is IntegrationStatus.INACTIVE


def test_a_stripe_account_connected_in_one_workspace_is_refused_in_another_naming_it(
    session: Session, sandbox: RunningSandbox
) -> None:
    lakeside = _owner(session, "Lakeside Live Boutique")
    studio = _owner(session, "Reel Moments Studio")
    keys = new_account(
        sandbox.url,
        restricted_permissions={
            "account": "read",
            "customers": "write",
            "invoices": "write",
            "webhook_endpoints": "write",
        },
    )
    assert _connect(session, sandbox, lakeside, keys["secret_key"]).ok
    for key in (keys["secret_key"], keys["restricted_key"]):  # the account, whatever its key
        refused = _connect(session, sandbox, studio, key, save_inactive=True)
        assert not refused.ok and not refused.saved
        assert refused.message == (
            f"This Stripe account ({keys['account']}) is already connected to the workspace "
            "“Lakeside Live Boutique”. Each business connects its own Stripe account: paste "
            "this workspace's own key, or disconnect Stripe in “Lakeside Live Boutique” first."
        )
        assert key not in refused.message
    assert _stripe_row(session, studio) is None
    # The workspace that has it may reconnect it; the other connects an account of its own.
    assert _connect(session, sandbox, lakeside, keys["secret_key"]).ok
    own = new_account(sandbox.url, name="Reel Moments Studio")
    assert _connect(session, sandbox, studio, own["secret_key"]).ok


def test_a_disconnected_account_may_be_connected_by_another_workspace(
    session: Session, sandbox: RunningSandbox
) -> None:
    first, second = _owner(session, "First"), _owner(session, "Second")
    keys = new_account(sandbox.url)
    assert _connect(session, sandbox, first, keys["secret_key"]).ok
    _disconnect(session, first)
    assert _connect(session, sandbox, second, keys["secret_key"]).ok


def test_a_connection_made_before_account_ids_were_kept_learns_its_own_on_test(
    session: Session, sandbox: RunningSandbox
) -> None:
    lakeside, studio = _owner(session, "Lakeside"), _owner(session, "Studio")
    keys = new_account(sandbox.url)
    row = Integration(
        workspace_id=lakeside.workspace_id,
        provider="stripe",
        display_name="Stripe",
        status=IntegrationStatus.ACTIVE,
        settings={},
    )
    session.add(row)
    session.flush()
    credentials.seal(row, {"secret_key": keys["secret_key"]})
    tested = _test(session, lakeside, ProviderContext(live=False, sandbox_url=sandbox.url))
    assert tested.ok
    assert credentials.unseal(row)[connection_rows.ACCOUNT_KEY] == keys["account"]
    assert row.external_account_id == keys["account"]
    refused = _connect(session, sandbox, studio, keys["secret_key"])
    assert not refused.saved and "“Lakeside”" in refused.message


def test_an_old_connection_sharing_an_account_with_another_workspace_is_told_on_test(
    session: Session, sandbox: RunningSandbox
) -> None:
    """Two workspaces connected one account before account ids were kept: a test in the second
    says so, and does not quietly take the account for itself."""
    lakeside, studio = _owner(session, "Lakeside"), _owner(session, "Studio")
    keys = new_account(sandbox.url)
    context = ProviderContext(live=False, sandbox_url=sandbox.url)
    rows = []
    for owner in (lakeside, studio):
        row = Integration(
            workspace_id=owner.workspace_id,
            provider="stripe",
            display_name="Stripe",
            status=IntegrationStatus.ACTIVE,
            settings={},
        )
        session.add(row)
        session.flush()
        credentials.seal(row, {"secret_key": keys["secret_key"]})
        rows.append(row)
    assert _test(session, lakeside, context).ok
    told = _test(session, studio, context)
    assert "also connected to the workspace “Lakeside”" in told.message
    assert connection_rows.ACCOUNT_KEY not in credentials.unseal(rows[1])


def test_connect_with_stripe_oauth_is_refused_for_an_account_another_workspace_has(
    session: Session, sandbox: RunningSandbox
) -> None:
    """The same rule for Stripe Connect: the tokens an OAuth callback brings reach an account
    that is already another workspace's."""
    lakeside, studio = _owner(session, "Lakeside"), _owner(session, "Studio")
    keys = new_account(sandbox.url)
    assert _connect(session, sandbox, lakeside, keys["secret_key"]).ok
    refused = in_steps(
        session,
        lambda engine: connections.store_tokens(
            engine,
            actor=studio,
            provider_slug="stripe",
            secrets={
                "secret_key": keys["secret_key"],
                "stripe_user_id": keys["account"],
                "refresh_token": "rt_test",
                "method": "oauth",
            },
            context=ProviderContext(live=False, sandbox_url=sandbox.url),
        ),
    )
    assert not refused.ok and not refused.saved
    assert refused.message.startswith(
        f"This Stripe account ({keys['account']}) is already connected to the workspace “Lakeside”."
    )
    assert _stripe_row(session, studio) is None


def test_two_workspaces_connecting_one_account_at_once_cannot_both_win(
    session: Session, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both look before either has written (here: the look is made to miss); the account's
    UNIQUE(provider, external_account_id) lets only the first write, and the second gets the
    refusal the look would have given."""
    lakeside, studio = _owner(session, "Lakeside"), _owner(session, "Studio")
    keys = new_account(sandbox.url)
    assert _connect(session, sandbox, lakeside, keys["secret_key"]).ok
    lakeside_row = _stripe_row(session, lakeside)
    assert lakeside_row is not None and lakeside_row.external_account_id == keys["account"]
    monkeypatch.setattr(connections, "refuse_shared_account", lambda *a, **k: None)
    refused = _connect(session, sandbox, studio, keys["secret_key"])
    assert not refused.ok and not refused.saved
    assert refused.message.startswith(
        f"This Stripe account ({keys['account']}) is already connected to the workspace “Lakeside”."
    )
    assert _stripe_row(session, studio) is None
    # Disconnected, the account is free: the column is cleared with the credentials.
    _disconnect(session, lakeside)
    assert lakeside_row.external_account_id is None
    assert _connect(session, sandbox, studio, keys["secret_key"]).ok
