"""Restricted keys (``rk_…``): what each may do, per resource, as Stripe's Dashboard sets it
(None, Read or Write per resource; Write implies Read), and the 403 Stripe answers when a key
may not. Stripe checks this before it looks at the parameters, so a deliberately invalid write
tells "may write" (400) from "may not" (403) without changing anything.

Keys of a permission dict are the route table's resource names (``routes.ROUTES``); ``"*"``
stands for every resource.

Tested in tests/sandbox/test_stripe_restricted_keys.py.
"""

from __future__ import annotations

from collections.abc import Mapping

# The route table's resource -> the name Stripe gives the permission in its 403 message
# ("Having the 'rak_invoice_write' permission would allow this request to continue.").
RAK_NAMES = {
    "account": "account",
    "customers": "customer",
    "products": "product",
    "prices": "plan",
    "invoices": "invoice",
    "payment_intents": "payment_intent",
    "charges": "charge",
    "refunds": "refund",
    "disputes": "dispute",
    "checkout_sessions": "checkout_session",
    "subscriptions": "subscription",
    "webhook_endpoints": "webhook",
}

READ, WRITE = "read", "write"

# The demo restricted keys: one with exactly what Integrations Hub needs, one read-only.
HUB_PERMISSIONS: dict[str, str] = {
    "account": READ,
    "customers": WRITE,
    "invoices": WRITE,
    "webhook_endpoints": WRITE,
}
READ_ONLY: dict[str, str] = {"*": READ}


def allows(permissions: Mapping[str, str], resource: str, access: str) -> bool:
    granted = permissions.get(resource) or permissions.get("*")
    if granted == WRITE:
        return True
    return granted == READ and access == READ


def rak_name(resource: str, access: str) -> str:
    return f"rak_{RAK_NAMES.get(resource, resource)}_{access}"


def refusal_message(masked_key: str, account: str, resource: str, access: str) -> str:
    """Stripe's words for a restricted key without the permission (HTTP 403; its error type
    is ``invalid_request_error`` with no code: the SDKs raise PermissionError on the status)."""
    return (
        f"The provided key '{masked_key}' does not have the required permissions for this "
        f"endpoint on account '{account}'. Having the '{rak_name(resource, access)}' "
        "permission would allow this request to continue."
    )
