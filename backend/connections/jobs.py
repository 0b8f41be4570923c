"""The connections domain's work: registering our webhook endpoint on a connected Stripe
account, and keeping Google access tokens alive (they last an hour and are renewed ahead).

Covered by tests/jobs/test_discovery.py (what is declared here is loaded) and
tests/connections/test_google_tokens.py.
"""

from __future__ import annotations

from backend.connections import google_tokens, stripe_webhook_setup
from backend.db import get_engine
from backend.platform import outbox
from backend.platform.periodic import periodic

# -- outbox job kinds -----------------------------------------------------------------------

outbox.declare(stripe_webhook_setup.REGISTER_KIND, stripe_webhook_setup.register, provider="stripe")

# -- periodic jobs --------------------------------------------------------------------------


@periodic(
    id="google-token-refresh",
    seconds=120,
    description="Renew Google Drive access tokens expiring within 10 minutes; a refused "
    "renewal turns the integration Error (Reconnect).",
)
def refresh_google_tokens() -> None:
    google_tokens.refresh_due(get_engine())
