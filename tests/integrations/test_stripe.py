"""The Stripe provider: key checks before any call, and "Test connection" through the stripe SDK
against the sandbox."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

import backend.sandbox.stripe as stripe_emulator
from backend.integrations.base import InvalidCredentials
from backend.integrations.stripe import PROVIDER, StripeCredentials, StripeSettings
from tests.integrations.support import LIVE, OFFLINE, sandboxed
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[stripe_emulator])


def new_account(sandbox: RunningSandbox, **body: Any) -> dict[str, str]:
    response = httpx.post(f"{sandbox.url}/stripe/_sandbox/accounts", json=body, timeout=10)
    response.raise_for_status()
    keys: dict[str, str] = response.json()
    return keys


def creds(key: str, whsec: str | None = None) -> StripeCredentials:
    return StripeCredentials(
        secret_key=SecretStr(key), webhook_signing_secret=SecretStr(whsec) if whsec else None
    )


def refusal(credentials: StripeCredentials, *, live: bool = False) -> InvalidCredentials:
    context = LIVE if live else OFFLINE
    with pytest.raises(InvalidCredentials) as caught:
        PROVIDER.check_credentials(credentials, context)
    return caught.value


def test_publishable_key_is_refused_with_what_to_paste() -> None:
    error = refusal(creds("pk_test_51abcdef"))
    assert str(error) == (
        "This is a publishable key (pk_…). Paste the secret key that starts with sk_ "
        "(or a restricted key rk_ with write access) from Developers → API keys."
    )
    assert error.field == "secret_key"


def test_something_else_is_refused_as_not_a_secret_key() -> None:
    error = refusal(creds("whsec_abc"))
    assert "does not look like a Stripe secret key" in str(error)
    assert error.field == "secret_key"


@pytest.mark.parametrize("key", ["sk_test_51abc", "rk_test_51abc"])
def test_test_mode_key_is_refused_in_live_mode(key: str) -> None:
    error = refusal(creds(key), live=True)
    assert str(error) == "This is a test-mode key; live mode needs a live key (sk_live_…)."


def test_test_mode_key_is_accepted_outside_live_mode(sandbox: RunningSandbox) -> None:
    PROVIDER.check_credentials(creds("sk_test_51abc"), sandboxed(sandbox))
    PROVIDER.check_credentials(creds("sk_live_51abc"), LIVE)


def test_webhook_signing_secret_must_start_with_whsec() -> None:
    error = refusal(creds("sk_test_51abc", whsec="sk_test_51abc"))
    assert error.field == "webhook_signing_secret"
    assert "starts with whsec_" in str(error)
    # Secrets never appear in the messages.
    assert "sk_test_51abc" not in str(error)


def test_settings_defaults_and_bounds() -> None:
    settings = StripeSettings()
    assert (settings.default_currency, settings.days_until_due) == ("usd", 7)
    assert settings.invoice_memo_template == "Your claims from {show}"
    with pytest.raises(ValidationError):
        StripeSettings(days_until_due=91)
    with pytest.raises(ValidationError):
        StripeSettings(days_until_due=0)


def test_connection_with_a_sandbox_secret_key(sandbox: RunningSandbox) -> None:
    keys = new_account(sandbox, name="Lakeside Events")
    result = PROVIDER.test_connection(
        creds(keys["secret_key"]), StripeSettings(), sandboxed(sandbox)
    )
    assert result.ok, result.message
    assert result.message == "Connected to Stripe account Lakeside Events."
    assert result.account["id"] == keys["account"]


def test_restricted_key_without_account_access_reports_stripes_message(
    sandbox: RunningSandbox,
) -> None:
    keys = new_account(sandbox, restricted_permissions={"customers": "write"})
    result = PROVIDER.test_connection(
        creds(keys["restricted_key"]), StripeSettings(), sandboxed(sandbox)
    )
    assert not result.ok
    assert "does not have the required permissions" in result.message
    assert "rak_account_read" in result.message
    assert keys["restricted_key"] not in result.message


def test_unknown_key_is_reported_as_refused(sandbox: RunningSandbox) -> None:
    result = PROVIDER.test_connection(
        creds("sk_test_51NotAKeyTheSandboxKnows000000"), StripeSettings(), sandboxed(sandbox)
    )
    assert not result.ok
    assert "Invalid API Key provided" in result.message
    assert "sk_test_51NotAKeyTheSandboxKnows000000" not in result.message


HUB_NEEDS = {"account": "read", "customers": "write", "invoices": "write"}


def test_read_only_restricted_key_fails_the_test_naming_what_it_may_not_write(
    sandbox: RunningSandbox,
) -> None:
    keys = new_account(sandbox, restricted_permissions={"*": "read"})
    result = PROVIDER.test_connection(
        creds(keys["restricted_key"]), StripeSettings(), sandboxed(sandbox)
    )
    assert not result.ok
    assert result.message == (
        "This restricted key may not write Customers, Invoices and Webhook Endpoints. In "
        "Stripe, open Developers → API keys, edit the key and give it Write on Customers, "
        "Invoices and Webhook Endpoints, then test again (or paste the secret key that starts "
        "with sk_)."
    )
    assert keys["restricted_key"] not in result.message


def test_restricted_key_missing_one_permission_is_told_that_one(sandbox: RunningSandbox) -> None:
    keys = new_account(sandbox, restricted_permissions=HUB_NEEDS | {"webhook_endpoints": "read"})
    result = PROVIDER.test_connection(
        creds(keys["restricted_key"]), StripeSettings(), sandboxed(sandbox)
    )
    assert not result.ok
    assert result.message.startswith("This restricted key may not write Webhook Endpoints. ")
    assert "give it Write on Webhook Endpoints" in result.message
    # With a signing secret pasted the product registers no endpoint: it needs no such write.
    with_secret = PROVIDER.test_connection(
        creds(keys["restricted_key"], whsec="whsec_pasted"), StripeSettings(), sandboxed(sandbox)
    )
    assert with_secret.ok, with_secret.message


def test_restricted_key_with_what_the_hub_writes_passes_and_nothing_is_created(
    sandbox: RunningSandbox,
) -> None:
    keys = new_account(
        sandbox,
        name="Lakeside Events",
        restricted_permissions=HUB_NEEDS | {"webhook_endpoints": "write"},
    )
    result = PROVIDER.test_connection(
        creds(keys["restricted_key"]), StripeSettings(), sandboxed(sandbox)
    )
    assert result.ok, result.message
    assert result.message == "Connected to Stripe account Lakeside Events."
    assert result.account["id"] == keys["account"]
    objects = sandbox.ctx.store.read("stripe")["objects"][keys["account"]]
    assert not objects.get("customer") and not objects.get("invoice")
    assert not objects.get("webhook_endpoint")


def test_a_quote_in_a_platform_id_cannot_widen_the_customer_search(
    sandbox: RunningSandbox,
) -> None:
    """An id from an imported file is a value in Stripe's search language, never a clause: a
    crafted one must not find (and bill) another buyer's customer."""
    from backend.integrations.stripe import StripeAdapter, StripeEndpoints

    key = new_account(sandbox)["secret_key"]
    adapter = StripeAdapter(key, endpoints=StripeEndpoints.sandbox(sandbox.url))
    victim = adapter.ensure_customer(
        platform_user_id="fb_victim", email=None, name="Victim", idempotency_key="c-victim"
    )
    crafted = "x' OR metadata['platform_user_id']:'fb_victim"
    theirs = adapter.ensure_customer(
        platform_user_id=crafted, email=None, name="Crafted", idempotency_key="c-crafted"
    )
    assert theirs != victim
    quoted = "o'brien\\"
    first = adapter.ensure_customer(
        platform_user_id=quoted, email=None, name="O'Brien", idempotency_key="c-obrien-1"
    )
    again = adapter.ensure_customer(
        platform_user_id=quoted, email=None, name="O'Brien", idempotency_key="c-obrien-2"
    )
    assert again == first  # found by its exact id, not made twice
