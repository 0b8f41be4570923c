"""Stripe's declaration (``PROVIDER``): its key form, settings and connection test.

Tested in tests/integrations/test_stripe.py (through the official stripe SDK, against the sandbox).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import BaseModel, Field, SecretStr

from backend.integrations._common import expect
from backend.integrations.base import (
    Category,
    ConnectionTest,
    InvalidCredentials,
    Method,
    PlanTier,
    Provider,
    ProviderContext,
    ProviderInfo,
    timed,
)
from backend.integrations.deadline import within
from backend.integrations.stripe.adapter import (
    CUSTOMERS,
    INVOICES,
    WEBHOOK_ENDPOINTS,
    StripeAdapter,
    StripeEndpoints,
    WriteProbe,
)

# A "Test connection" click must answer: it waits this long, a job the adapter's timeout.
TEST_TIMEOUT_SECONDS = 10.0


_SECRET_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_")


class StripeCredentials(BaseModel):
    secret_key: SecretStr = Field(
        description="Secret key (sk_…) or a restricted key (rk_…) from Developers → API keys."
    )
    webhook_signing_secret: SecretStr | None = Field(
        default=None,
        description="Signing secret (whsec_…) of the webhook endpoint pointing at this console.",
    )


class StripeSettings(BaseModel):
    default_currency: str = Field(default="usd", pattern=r"^[a-z]{3}$")
    invoice_memo_template: str = Field(default="Your claims from {show}", max_length=500)
    days_until_due: int = Field(default=7, ge=1, le=90)


def needed_writes(credentials: StripeCredentials) -> list[WriteProbe]:
    """What the product writes with a workspace's key: buyers' customers and their invoices,
    and the webhook endpoint it registers when no signing secret was pasted."""
    needed = [CUSTOMERS, INVOICES]
    if credentials.webhook_signing_secret is None or not (
        credentials.webhook_signing_secret.get_secret_value().strip()
    ):
        needed.append(WEBHOOK_ENDPOINTS)
    return needed


def _missing_writes(adapter: StripeAdapter, credentials: StripeCredentials) -> dict[str, Any]:
    return {"missing": [p.label for p in needed_writes(credentials) if not adapter.may_write(p)]}


def _missing_message(labels: list[str]) -> str:
    names = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
    return (
        f"This restricted key may not write {names}. In Stripe, open Developers → API keys, "
        f"edit the key and give it Write on {names}, then test again (or paste the secret key "
        "that starts with sk_)."
    )


class StripeProvider:
    info = ProviderInfo(
        slug="stripe",
        name="Stripe",
        category=Category.PAYMENTS,
        description="Send invoices and take card payments; paid invoices update claims.",
        minimum_plan=PlanTier.PRO,
        logo="/logos/stripe.svg",
        # Stripe Connect (OAuth) or the operator's own keys.
        methods=(Method.OAUTH, Method.API_KEY),
        payment_provider=True,
        docs_url="https://docs.stripe.com/keys",
        one_workspace_per_account=True,
    )
    credentials_model: type[BaseModel] = StripeCredentials
    settings_model: type[BaseModel] = StripeSettings

    def check_credentials(self, credentials: BaseModel, context: ProviderContext) -> None:
        creds = expect(credentials, StripeCredentials)
        key = creds.secret_key.get_secret_value().strip()
        if key.startswith("pk_"):
            raise InvalidCredentials(
                "This is a publishable key (pk_…). Paste the secret key that starts with sk_ "
                "(or a restricted key rk_ with write access) from Developers → API keys.",
                field="secret_key",
            )
        if not key.startswith(_SECRET_PREFIXES):
            raise InvalidCredentials(
                "This does not look like a Stripe secret key. Paste the key that starts with "
                "sk_live_ (or sk_test_ for test mode) from Developers → API keys.",
                field="secret_key",
            )
        if context.live and key.startswith(("sk_test_", "rk_test_")):
            raise InvalidCredentials(
                "This is a test-mode key; live mode needs a live key (sk_live_…).",
                field="secret_key",
            )
        signing = (creds.webhook_signing_secret or SecretStr("")).get_secret_value().strip()
        if signing and not signing.startswith("whsec_"):
            raise InvalidCredentials(
                "A webhook signing secret starts with whsec_. Copy it from Developers → "
                "Webhooks → your endpoint → Signing secret (not the API key).",
                field="webhook_signing_secret",
            )

    def test_connection(
        self, credentials: BaseModel, settings: BaseModel, context: ProviderContext
    ) -> ConnectionTest:
        creds = expect(credentials, StripeCredentials)
        adapter = self.adapter(creds, context, timeout=TEST_TIMEOUT_SECONDS)
        # The whole test, a restricted key's probes included, answers within the one timeout.
        with within("Stripe", TEST_TIMEOUT_SECONDS, slug="stripe"):
            return self._test(adapter, creds)

    def _test(self, adapter: StripeAdapter, creds: StripeCredentials) -> ConnectionTest:
        outcome = timed(adapter.account, "Connected to Stripe.")
        if not outcome.ok:
            return outcome
        if creds.secret_key.get_secret_value().strip().startswith("rk_"):
            probed = timed(lambda: _missing_writes(adapter, creds), "")
            latency = outcome.latency_ms + probed.latency_ms
            if not probed.ok:
                return replace(probed, latency_ms=latency)
            if missing := probed.account.get("missing"):
                return ConnectionTest(False, _missing_message(missing), latency)
            outcome = replace(outcome, latency_ms=latency)
        name = outcome.account.get("name") or outcome.account.get("id")
        return replace(outcome, message=f"Connected to Stripe account {name}.")

    def adapter(
        self, credentials: StripeCredentials, context: ProviderContext, *, timeout: float = 30.0
    ) -> StripeAdapter:
        """The adapter for these credentials, pointed at the sandbox in sandbox mode."""
        endpoints = (
            StripeEndpoints.sandbox(context.sandbox_url)
            if context.sandbox_url
            else StripeEndpoints()
        )
        return StripeAdapter(
            credentials.secret_key.get_secret_value().strip(),
            endpoints=endpoints,
            throttle=context.throttle,
            timeout=timeout,
        )


PROVIDER: Provider = StripeProvider()
