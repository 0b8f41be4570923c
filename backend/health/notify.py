"""Delivering an incident's notices: the outbox jobs ``alerts.slack`` (the workspace's Slack
bot posts to its alert channel) and ``alerts.email`` (SendGrid mails the workspace's owners and
admins; in sandbox mode it lands in the sandbox's mailbox). What to say and when is decided in
``backend/platform/incident_notify.py``, which enqueues these with the key
``alert:<id>:<number>:<channel>``: one job per notice and channel, run once by the outbox.

Tested in tests/health/test_notify.py.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.connections import credentials, providers
from backend.integrations import sendgrid, slack
from backend.platform import incidents
from backend.platform.outbox import JobContext, PermanentFailure
from models import Alert, Membership, Operator, Role

NOTIFY_ROLES = (Role.OWNER, Role.ADMIN)


def _alert(session: Session, job: JobContext) -> Alert:
    alert = session.scalars(
        select(Alert).where(
            Alert.id == int(job.payload["alert_id"]), Alert.workspace_id == job.workspace_id
        )
    ).first()
    if alert is None:
        raise PermanentFailure("the alert no longer exists (its workspace was removed)")
    return alert


def _delivered(session: Session, job: JobContext, channel: str) -> None:
    alert = _alert(session, job)
    incidents.event(
        session, alert, "delivered", "scheduler", f"notice {job.payload['number']} by {channel}"
    )


def post_to_slack(session: Session, job: JobContext) -> None:
    """Post the notice in the workspace's alert channel (Slack setting, ``#alerts``)."""
    assert job.workspace_id is not None
    _alert(session, job)
    row = providers.connected_integration(session, workspace_id=job.workspace_id, provider="slack")
    token = credentials.unseal(row).get("bot_token") or ""
    channel = str((row.settings or {}).get("alert_channel") or "#alerts")
    engine = session.get_bind().engine
    adapter = slack.PROVIDER.adapter(  # type: ignore[attr-defined]
        slack.SlackCredentials(bot_token=token),  # type: ignore[arg-type]
        providers.provider_context("slack", engine, workspace_id=job.workspace_id),
    )
    text = str(job.payload["text"])
    # Slack has no idempotency key: the outbox makes one job per notice, and the key travels
    # in the message's metadata so that a doubt after a crash can be settled by reading it.
    metadata = {"event_type": "hub_alert", "event_payload": {"key": job.idempotency_key}}
    job.call_provider(lambda: adapter.post_message(channel, text, metadata=metadata))
    _delivered(session, job, "Slack")


def recipients(session: Session, workspace_id: int) -> list[str]:
    return sorted(
        session.scalars(
            select(Operator.email)
            .join(Membership, Membership.operator_id == Operator.id)
            .where(Membership.workspace_id == workspace_id, Membership.role.in_(NOTIFY_ROLES))
        )
    )


def send_email(session: Session, job: JobContext) -> None:
    """Mail the notice to the workspace's owners and admins through its SendGrid."""
    assert job.workspace_id is not None
    _alert(session, job)
    to = recipients(session, job.workspace_id)
    if not to:
        raise PermanentFailure("this workspace has no owner or admin to mail")
    row = providers.connected_integration(
        session, workspace_id=job.workspace_id, provider="sendgrid"
    )
    settings = row.settings or {}
    if not settings.get("from_email"):
        raise PermanentFailure("SendGrid has no sender address; set one under Integrations")
    key = credentials.unseal(row).get("api_key") or ""
    engine = session.get_bind().engine
    adapter = sendgrid.PROVIDER.adapter(  # type: ignore[attr-defined]
        sendgrid.SendGridCredentials(api_key=key),  # type: ignore[arg-type]
        providers.provider_context("sendgrid", engine, workspace_id=job.workspace_id),
    )
    text = str(job.payload["text"])
    subject = text.split(":", 1)[0][:120]
    job.call_provider(
        lambda: adapter.send_mail(
            from_email=str(settings["from_email"]),
            from_name=str(settings.get("from_name") or ""),
            to=to,
            subject=subject,
            text=text,
            custom_args={"hub_alert": job.idempotency_key},
        )
    )
    _delivered(session, job, "e-mail")
