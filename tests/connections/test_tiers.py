"""Tiers: Free connects nothing, Pro the everyday five with one payment provider, Business all."""

from __future__ import annotations

from backend.connections import tiers
from backend.integrations.base import PlanTier
from models import Plan
from tests.support.fakes import info

STRIPE = info("stripe", payment=True)
SENDGRID = info("sendgrid")
SQUARE = info("square", payment=True, minimum=PlanTier.PRO)
WEBHOOKS = info("webhooks", minimum=PlanTier.PRO)


def test_free_sees_everything_and_connects_nothing() -> None:
    verdict = tiers.can_connect(Plan.FREE, STRIPE, [])
    assert not verdict.ok
    assert verdict.reason == "Stripe needs the Pro plan. Upgrade under Settings → Plan."
    assert verdict.required_plan is Plan.PRO
    assert not tiers.can_connect(Plan.FREE, info("sendgrid", minimum=PlanTier.FREE), []).ok


def test_pro_connects_the_everyday_five() -> None:
    for slug in ("stripe", "sendgrid", "google_drive", "slack", "messenger"):
        assert tiers.can_connect(Plan.PRO, info(slug), []).ok, slug


def test_pro_does_not_connect_what_is_outside_its_list_even_if_the_module_says_pro() -> None:
    verdict = tiers.can_connect(Plan.PRO, WEBHOOKS, [])
    assert not verdict.ok and "Business plan" in verdict.reason
    assert tiers.can_connect(Plan.BUSINESS, WEBHOOKS, []).ok


def test_pro_allows_one_payment_provider_at_a_time() -> None:
    stripe = info("stripe", payment=True)
    paypal = info("messenger", payment=True)  # on Pro's list, but a second payment provider
    assert tiers.can_connect(Plan.PRO, stripe, []).ok
    refused = tiers.can_connect(Plan.PRO, paypal, ["stripe"])
    assert not refused.ok
    assert "one payment provider" in refused.reason and "stripe" in refused.reason
    # Updating the active one's keys is not refused by its own row.
    assert tiers.can_connect(Plan.PRO, stripe, ["stripe"]).ok


def test_business_allows_several_payment_providers() -> None:
    assert tiers.can_connect(Plan.BUSINESS, SQUARE, ["stripe"]).ok


def test_coming_soon_is_never_connectable() -> None:
    verdict = tiers.can_connect(Plan.BUSINESS, info("shopify", available=False), [])
    assert not verdict.ok and "coming soon" in verdict.reason


def test_inactive_reason_names_the_plan() -> None:
    assert (
        tiers.inactive_reason(STRIPE, Plan.FREE)
        == "Inactive: Stripe needs the Pro plan; this workspace is now on Free."
    )
