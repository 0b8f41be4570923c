"""The accounts domain's work: what the platform's own Stripe account tells us about plans
(upgrades paid, subscriptions changed or ended), and the hourly close of expired sessions.

Covered by tests/jobs/test_discovery.py (what is declared here is loaded) and
tests/accounts/test_plans.py.
"""

from __future__ import annotations

from backend.accounts import plans
from backend.accounts import service as accounts
from backend.db import session_scope
from backend.platform import inbox
from backend.platform.periodic import periodic

# -- inbox handlers: the platform's Stripe account (plans.PLATFORM) -------------------------

STRIPE_PLATFORM_HANDLERS: dict[str, inbox.InboxHandler] = {
    "checkout.session.completed": plans.checkout_completed,
    "customer.subscription.created": plans.subscription_changed,
    "customer.subscription.updated": plans.subscription_changed,
    "customer.subscription.deleted": plans.subscription_changed,
}
inbox.register(plans.PLATFORM, STRIPE_PLATFORM_HANDLERS)

# -- periodic jobs --------------------------------------------------------------------------


@periodic(id="purge-expired-sessions", seconds=3600, description="Close expired login sessions.")
def purge_expired_sessions() -> None:
    with session_scope() as session:
        accounts.purge_expired_sessions(session)
