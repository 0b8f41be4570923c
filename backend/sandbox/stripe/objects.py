"""Objects shaped like Stripe's: every object starts from Stripe's published fixture for its
resource (``../shared/reference/stripe-fixtures3.json``), so it carries exactly the fields Stripe
documents, with the example values replaced by neutral ones and then by the sandbox's own.

Tested in tests/sandbox/test_stripe.py and tests/sandbox/test_stripe_fidelity.py (through the
official stripe SDK)."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from backend.config import PROJECT_ROOT

FIXTURES_PATH = PROJECT_ROOT.parent / "shared" / "reference" / "stripe-fixtures3.json"

# Nested configuration whose published example is a sensible default, kept as published.
_KEEP = {
    "invoice": {"automatic_tax", "payment_settings", "rendering"},
    "checkout.session": {"automatic_tax", "payment_method_types"},
    "subscription": {"automatic_tax", "invoice_settings", "payment_settings"},
    "payment_intent": {"payment_method_types"},
}
# Fields Stripe never leaves null; their neutral value when the sandbox does not set one.
_NEUTRAL = {
    "livemode": False,
    "metadata": {},
    "discounts": [],
    "tax_rates": [],
    "default_tax_rates": [],
}


class FixturesMissing(RuntimeError):
    pass


@functools.cache
def fixtures() -> dict[str, dict[str, Any]]:
    if not FIXTURES_PATH.exists():
        raise FixturesMissing(
            f"Stripe's published fixtures are expected at {FIXTURES_PATH} (../shared/reference)."
        )
    resources: dict[str, dict[str, Any]] = json.loads(FIXTURES_PATH.read_text())["resources"]
    return resources


@functools.cache
def _neutral(resource: str) -> dict[str, Any]:
    published = fixtures()[resource]
    keep = _KEEP.get(resource, set())
    base: dict[str, Any] = {}
    for key, value in published.items():
        if key in keep or key == "object":
            base[key] = copy.deepcopy(value)
        elif key in _NEUTRAL:
            base[key] = copy.deepcopy(_NEUTRAL[key])
        elif isinstance(value, list):
            base[key] = []
        else:
            base[key] = None
    return base


def shape(resource: str, **fields: Any) -> dict[str, Any]:
    """A new object of ``resource``; a field Stripe's fixture does not have is a bug here."""
    obj = copy.deepcopy(_neutral(resource))
    unknown = set(fields) - set(obj)
    if unknown:
        raise KeyError(f"{resource} has no field(s) {sorted(unknown)} in Stripe's fixture")
    obj.update(fields)
    return obj


def update(obj: dict[str, Any], **fields: Any) -> dict[str, Any]:
    unknown = set(fields) - set(obj)
    if unknown:
        raise KeyError(f"{obj.get('object')} has no field(s) {sorted(unknown)}")
    obj.update(fields)
    return obj


def list_object(data: list[dict[str, Any]], url: str, has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def search_result(
    data: list[dict[str, Any]], url: str, *, next_page: str | None = None
) -> dict[str, Any]:
    return {
        "object": "search_result",
        "data": data,
        "has_more": next_page is not None,
        "next_page": next_page,
        "url": url,
    }


# Wrapper shapes that are not resources of their own in the fixtures.
CONTAINER_FIELDS = {
    "list": {"object", "data", "has_more", "url", "total_count"},
    "search_result": {"object", "data", "has_more", "next_page", "url", "total_count"},
}
