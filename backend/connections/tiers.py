"""What each plan may connect. Checked here, on the server, by every service that connects or
reactivates an integration: the console's locks are a courtesy, not the rule.

Free sees every integration and connects none; Pro connects the everyday five with at most one
payment provider active at a time; Business connects everything, several payment providers and
outbound webhooks.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from backend.integrations.base import ProviderInfo
from models import Plan

RANK = {Plan.FREE: 0, Plan.PRO: 1, Plan.BUSINESS: 2}
# The providers Pro includes; anything else needs Business even if its module says less.
PRO_PROVIDERS = frozenset({"stripe", "sendgrid", "google_drive", "slack", "messenger"})
UPGRADE_HINT = "Upgrade under Settings → Plan."


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str = ""
    # The lowest plan that would allow it (shown on a locked tile).
    required_plan: Plan | None = None


def required_plan(info: ProviderInfo) -> Plan:
    """The lowest plan that may connect ``info``: the registry's minimum, never below Pro (Free
    connects nothing), and Business for anything outside Pro's list."""
    plan = max(Plan(info.minimum_plan.value), Plan.PRO, key=RANK.__getitem__)
    if info.slug not in PRO_PROVIDERS:
        plan = Plan.BUSINESS
    return plan


def plan_allows(plan: Plan, info: ProviderInfo) -> bool:
    return RANK[plan] >= RANK[required_plan(info)]


def payment_limit(plan: Plan) -> int | None:
    """How many payment providers may be active at once (None: no limit)."""
    return 1 if plan is Plan.PRO else None


def can_connect(
    plan: Plan, info: ProviderInfo, active_payment_providers: Collection[str]
) -> Verdict:
    """May a workspace on ``plan`` connect ``info``? ``active_payment_providers`` are the slugs
    of the workspace's active payment integrations (this provider itself is ignored, so that
    updating its keys is not refused by its own row)."""
    if not info.available:
        return Verdict(False, f"{info.name} is coming soon.")
    needed = required_plan(info)
    if RANK[plan] < RANK[needed]:
        return Verdict(
            False, f"{info.name} needs the {needed.value.title()} plan. {UPGRADE_HINT}", needed
        )
    others = sorted(slug for slug in active_payment_providers if slug != info.slug)
    limit = payment_limit(plan)
    if info.payment_provider and limit is not None and len(others) >= limit:
        return Verdict(
            False,
            f"The {plan.value.title()} plan allows one payment provider at a time, and "
            f"{', '.join(others)} is active. Disconnect it first, or upgrade to Business "
            f"under Settings → Plan to use several.",
            Plan.BUSINESS,
        )
    return Verdict(True)


def inactive_reason(info: ProviderInfo, plan: Plan) -> str:
    """What a tile says about an integration a downgrade switched off."""
    return (
        f"Inactive: {info.name} needs the {required_plan(info).value.title()} plan; "
        f"this workspace is now on {plan.value.title()}."
    )
