"""The platform's own incidents, posted by the sidecar itself.

An incident of no workspace (the scheduler stopped) has no outbox channel: the outbox is
drained by the scheduler, which may be what stopped, and no business owns the incident. So the
sidecar that raised it posts each notice (``Alert.notified_count``: opened, regressed, resolved …)
to ``HUB_PLATFORM_ALERT_URL`` as JSON ``{"text": …}`` (what a Slack incoming webhook takes).

Once per notice with any number of sidecars: a notice is taken in a short transaction that
moves ``posted_count`` up to ``notified_count`` only if no one else has (a conditional UPDATE),
then posted with no transaction open; a post that fails gives the notice back for the next
round. A sidecar killed between the two loses that notice: at most once, because a page that
arrives twice wakes a person twice, and the incident stays on /readyz and in the logs.

Tested in tests/health/test_platform_notices.py.
"""

from __future__ import annotations

import structlog
from sqlalchemy import Engine, select, update

from backend.db import session_scope
from backend.integrations import call_log
from backend.integrations.deadline import http_client, within
from backend.platform.incident_notify import text_for
from models import Alert, AlertState

log = structlog.get_logger("alerts")

POST_SECONDS = 10.0


def _take(engine: Engine) -> list[tuple[int, int, str]]:
    """The notices nobody has posted yet, taken: (alert id, notice number, text)."""
    taken = []
    with session_scope(engine) as session:
        due = session.scalars(
            select(Alert).where(
                Alert.workspace_id.is_(None), Alert.posted_count < Alert.notified_count
            )
        ).all()
        for alert in due:
            claimed = session.execute(
                update(Alert)
                .where(Alert.id == alert.id, Alert.posted_count == alert.posted_count)
                .values(posted_count=alert.notified_count)
            )
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                if alert.state is AlertState.RESOLVED:
                    reason = "resolved"
                else:
                    reason = "regressed" if alert.regressed else "opened"
                taken.append((alert.id, alert.notified_count, text_for(alert, reason)))
    return taken


def _give_back(engine: Engine, alert_id: int, number: int) -> None:
    with session_scope(engine) as session:
        session.execute(
            update(Alert)
            .where(Alert.id == alert_id, Alert.posted_count == number)
            .values(posted_count=number - 1)
        )


def post_due(engine: Engine, url: str | None) -> int:
    """Post every platform notice not yet posted; returns how many were."""
    if not url:
        return 0
    posted = 0
    for alert_id, number, text in _take(engine):
        try:
            with (
                call_log.scope(operation="platform_alert"),
                within("The platform alert endpoint", POST_SECONDS, slug="platform_alerts"),
                http_client(POST_SECONDS) as client,
            ):
                client.post(url, json={"text": text}).raise_for_status()
        except Exception as exc:
            # The URL may hold a secret (Slack's does): only the error's type is logged.
            log.warning("platform_alert.post_failed", alert=alert_id, error=type(exc).__name__)
            _give_back(engine, alert_id, number)
            continue
        posted += 1
        log.info("platform_alert.posted", alert=alert_id, number=number)
    return posted
