"""The health domain's work: the five-minute check that alerts on failing providers.

Covered by tests/jobs/test_discovery.py (what is declared here is loaded).
"""

from __future__ import annotations

from backend.db import session_scope
from backend.health import checks, notify
from backend.platform import incident_notify, outbox
from backend.platform.periodic import periodic

# -- outbox job kinds -----------------------------------------------------------------------

outbox.declare(incident_notify.SLACK_KIND, notify.post_to_slack, provider="slack")
outbox.declare(incident_notify.EMAIL_KIND, notify.send_email, provider="sendgrid")

# -- periodic jobs --------------------------------------------------------------------------


@periodic(
    id="provider-health",
    seconds=300,
    description="Alert on providers failing more than half their calls in 15 minutes.",
)
def provider_health() -> None:
    with session_scope() as session:
        checks.check_provider_health(session)
