"""Stripe: every call the product makes to it, through the official SDK (``adapter``), and the
provider's declaration (``PROVIDER``: its key form, settings and connection test, ``provider``).

Importers use ``backend.integrations.stripe``; the two modules are how it reads, not an API.
"""

from __future__ import annotations

from backend.integrations.stripe.adapter import (
    CUSTOMERS,
    INVOICES,
    WEBHOOK_ENDPOINTS,
    StripeAdapter,
    StripeEndpoints,
    StripeInvoice,
    Throttle,
    WriteProbe,
    translated_errors,
)
from backend.integrations.stripe.provider import (
    PROVIDER,
    TEST_TIMEOUT_SECONDS,
    StripeCredentials,
    StripeProvider,
    StripeSettings,
    needed_writes,
)

__all__ = [
    "CUSTOMERS",
    "INVOICES",
    "PROVIDER",
    "TEST_TIMEOUT_SECONDS",
    "WEBHOOK_ENDPOINTS",
    "StripeAdapter",
    "StripeCredentials",
    "StripeEndpoints",
    "StripeInvoice",
    "StripeProvider",
    "StripeSettings",
    "Throttle",
    "WriteProbe",
    "needed_writes",
    "translated_errors",
]
