"""When an incident tells people, and the deliveries it enqueues.

Once per incident: when it opens; again only when it escalates (normal → critical), regresses,
is still unacknowledged four hours after the last notice, or resolves (a "resolved" message to
whoever was told). Each notice has a number (``notified_count``); each channel's delivery is an
outbox job written in the same transaction as the change, with the idempotency key
``alert:<id>:<number>:<channel>``: however many scheduler processes see the change, one job
exists per notice and channel, and the outbox runs it once. The jobs themselves (Slack's
``post_message``, SendGrid's mail) are in ``backend/health/notify.py``.

Tested in tests/platform/test_incidents.py and tests/health/test_notify.py.
"""

from __future__ import annotations

import datetime as dt

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.platform import outbox
from models import Alert, AlertEvent, AlertState, Integration, IntegrationStatus, utcnow

log = structlog.get_logger("alerts")

REMIND_EVERY = dt.timedelta(hours=4)
SLACK_KIND = "alerts.slack"
EMAIL_KIND = "alerts.email"
# Which connected provider carries which delivery.
CHANNELS = (("slack", SLACK_KIND), ("sendgrid", EMAIL_KIND))
# Rules whose domain mails the people itself (a new lead: its ``new_lead_notification``): their
# incidents go to Slack only, and are news rather than trouble, so no four-hourly reminder.
OWN_EMAIL_RULES = frozenset({"lead.new"})
_REASONS = {
    "opened": "New alert",
    "regressed": "Alert back after it was resolved",
    "escalated": "Alert now critical",
    "still happening": "Alert still happening after its snooze",
    "reminder": "Alert still unacknowledged",
    "resolved": "Resolved",
}


def text_for(alert: Alert, reason: str) -> str:
    head = _REASONS.get(reason, reason.capitalize())
    seen = f"seen {alert.count} time{'s' if alert.count != 1 else ''}"
    what = f"[{alert.priority.value}] {alert.type}: {alert.message}"
    return f"{head} {what} ({seen}; alert #{alert.id})"


def channels(session: Session, workspace_id: int | None) -> list[str]:
    """The kinds of delivery the workspace has: Slack and e-mail where connected and working."""
    if workspace_id is None:
        return []  # the platform's own incidents go to the operators' logs and /readyz
    connected = set(
        session.scalars(
            select(Integration.provider).where(
                Integration.workspace_id == workspace_id,
                Integration.status == IntegrationStatus.ACTIVE,
            )
        )
    )
    return [kind for provider, kind in CHANNELS if provider in connected]


def notify(session: Session, alert: Alert, reason: str, *, now: dt.datetime | None = None) -> int:
    """Send notice number ``notified_count + 1`` of ``alert`` on every channel; returns it."""
    now = now or utcnow()
    if alert.id is None:
        session.flush()
    number = alert.notified_count + 1
    alert.notified_count = number
    alert.last_notified_at = now
    alert.notified_priority = alert.priority
    kinds = channels(session, alert.workspace_id)
    if alert.type in OWN_EMAIL_RULES:
        kinds = [k for k in kinds if k != EMAIL_KIND]
    text = text_for(alert, reason)
    for kind in kinds:
        outbox.enqueue(
            session,
            kind=kind,
            payload={"alert_id": alert.id, "number": number, "reason": reason, "text": text},
            idempotency_key=f"alert:{alert.id}:{number}:{kind.removeprefix('alerts.')}",
            workspace_id=alert.workspace_id,
        )
    session.add(
        AlertEvent(
            alert_id=alert.id,
            workspace_id=alert.workspace_id,
            at=now,
            what="notified",
            who="scheduler",
            detail=f"notice {number} ({reason}) to "
            + (", ".join(k.removeprefix("alerts.") for k in kinds) or "no channel connected"),
        )
    )
    log.info("alert.notified", alert=alert.id, number=number, reason=reason, channels=kinds)
    return number


def notify_if_due(
    session: Session, alert: Alert, reason: str, *, now: dt.datetime | None = None
) -> bool:
    """A notice for an incident that changed, unless it is quiet (snoozed, ignored) or was
    never worth one."""
    if alert.state not in (AlertState.OPEN, AlertState.ACKNOWLEDGED):
        return False
    notify(session, alert, reason, now=now)
    return True


def remind(session: Session, *, now: dt.datetime | None = None) -> int:
    """Notices for incidents still open (unacknowledged) four hours after their last one."""
    now = now or utcnow()
    due = session.scalars(
        select(Alert)
        .where(
            Alert.state == AlertState.OPEN,
            Alert.type.not_in(OWN_EMAIL_RULES),
            Alert.last_notified_at.is_not(None),
            Alert.last_notified_at <= now - REMIND_EVERY,
        )
        .with_for_update(skip_locked=True)
    ).all()
    for alert in due:
        notify(session, alert, "reminder", now=now)
    return len(due)
