"""Restricted keys (rk_…) in the Stripe emulator: per-resource Read/Write permissions, checked
before the parameters and refused the way Stripe refuses them, through the stripe SDK."""

from __future__ import annotations

import pytest
import stripe

import backend.sandbox.stripe as stripe_emulator
from backend.sandbox.demo_accounts import DEMO_WORKSPACES, LAKESIDE, REEL_MOMENTS
from tests.sandbox.conftest import MakeSandbox, RunningSandbox
from tests.sandbox.stripe_support import client, new_account

INVALID = {"integrations_hub_permission_check": "1"}


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[stripe_emulator])


def test_a_missing_permission_is_refused_with_stripes_403_before_the_parameters(
    sandbox: RunningSandbox,
) -> None:
    keys = new_account(
        sandbox.url, restricted_permissions={"account": "read", "webhook_endpoints": "read"}
    )
    restricted = client(sandbox.url, keys["restricted_key"])
    with pytest.raises(stripe.PermissionError) as caught:
        restricted.v1.webhook_endpoints.create(INVALID)  # type: ignore[arg-type]
    error = caught.value
    assert error.http_status == 403
    # Stripe's shape: type invalid_request_error, no code, the permission named in the message.
    body = (error.json_body or {})["error"]
    assert body["type"] == "invalid_request_error"
    assert body["code"] is None
    assert body["param"] is None
    assert body["message"] == (
        f"The provided key '{keys['restricted_key'][:8]}"
        f"{'*' * (len(keys['restricted_key']) - 12)}{keys['restricted_key'][-4:]}' does not "
        f"have the required permissions for this endpoint on account '{keys['account']}'. "
        "Having the 'rak_webhook_write' permission would allow this request to continue."
    )
    assert keys["restricted_key"] not in body["message"]
    # Reading what it may read still works.
    assert restricted.v1.webhook_endpoints.list().object == "list"


def test_write_implies_read_and_a_permitted_invalid_write_is_a_400_that_changes_nothing(
    sandbox: RunningSandbox,
) -> None:
    keys = new_account(sandbox.url, restricted_permissions={"customers": "write"})
    restricted = client(sandbox.url, keys["restricted_key"])
    with pytest.raises(stripe.InvalidRequestError) as caught:
        restricted.v1.customers.create(INVALID)  # type: ignore[arg-type]
    assert caught.value.http_status == 400
    assert caught.value.code == "parameter_unknown"
    assert restricted.v1.customers.list().data == []  # Write includes Read; nothing was made
    with pytest.raises(stripe.PermissionError):
        restricted.v1.invoices.list()  # no permission at all on Invoices


def test_each_demo_workspace_has_its_own_stripe_account_and_keys(
    sandbox: RunningSandbox,
) -> None:
    accounts = set()
    for demo in DEMO_WORKSPACES:
        account = client(sandbox.url, demo.stripe_secret_key).v1.accounts.retrieve_current()
        assert account.id == demo.stripe_account
        assert account.business_profile is not None
        assert account.business_profile.name == demo.name
        accounts.add(account.id)
        full = client(sandbox.url, demo.stripe_restricted_key)
        read_only = client(sandbox.url, demo.stripe_read_only_key)
        assert full.v1.accounts.retrieve_current().id == demo.stripe_account
        assert read_only.v1.accounts.retrieve_current().id == demo.stripe_account
        for resource in ("customers", "invoices", "webhook_endpoints"):
            with pytest.raises(stripe.InvalidRequestError):  # may write: the 400
                getattr(full.v1, resource).create(INVALID)
            with pytest.raises(stripe.PermissionError):
                getattr(read_only.v1, resource).create(INVALID)
    assert accounts == {LAKESIDE.stripe_account, REEL_MOMENTS.stripe_account}


def test_each_demo_account_has_a_signed_endpoint_for_its_workspace(
    sandbox: RunningSandbox,
) -> None:
    target = sandbox.ctx.webhook_targets["stripe"]
    for demo in DEMO_WORKSPACES:
        endpoints = client(sandbox.url, demo.stripe_secret_key).v1.webhook_endpoints.list()
        assert [e.url for e in endpoints.data] == [f"{target}/{demo.slug}"]
        secrets = sandbox.ctx.store.read("stripe")["endpoint_secrets"]
        assert secrets[endpoints.data[0].id] == demo.stripe_webhook_secret
