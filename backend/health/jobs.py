"""The health domain's work: the minute's evaluation of the alert rules, and the alert
deliveries.

Covered by tests/jobs/test_discovery.py (what is declared here is loaded).
"""

from __future__ import annotations

from backend.config import get_settings
from backend.db import session_scope
from backend.health import evaluate, notify
from backend.platform import incident_notify, outbox
from backend.platform.periodic import periodic

# -- outbox job kinds -----------------------------------------------------------------------

outbox.declare(incident_notify.SLACK_KIND, notify.post_to_slack, provider="slack")
# Local: it queues e-mails, whose own job (email.send) calls SendGrid.
outbox.declare(incident_notify.EMAIL_KIND, notify.send_email)

# -- periodic jobs --------------------------------------------------------------------------


@periodic(
    id="alert-rules",
    seconds=get_settings().alert_rules_seconds,
    description="Raise, settle and remind alerts from the rules (failing providers, breakers, "
    "dead jobs, lag, Google tokens, reconciliation).",
    # Not the registry's session-level lock: the evaluation takes a transaction-level one
    # itself, so the lock and its writes end together (backend/health/evaluate.py).
    exclusive=False,
)
def alert_rules() -> None:
    with session_scope() as session:
        evaluate.evaluate(session)
