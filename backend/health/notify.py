"""Delivering an incident's notices: the outbox jobs ``alerts.slack`` (the workspace's Slack
bot posts to its alert channel) and ``alerts.email`` (an ``alert_notification`` e-mail queued
for each of the workspace's owners and admins, sent by the e-mail pipeline through the
workspace's SendGrid; in sandbox mode it lands in the sandbox's mailbox). What to say and
when is decided in ``backend/platform/incident_notify.py``, which enqueues these with the key
``alert:<id>:<number>:<channel>``: one job per notice and channel, run once by the outbox.

Tested in tests/health/test_notify.py.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.connections import credentials, providers
from backend.email import service as email
from backend.integrations import slack
from backend.platform import incidents
from backend.platform.outbox import JobContext, PermanentFailure
from models import Alert, Membership, Operator, Role, Workspace

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
    """Queue the notice to the workspace's owners and admins as ``alert_notification``
    e-mails (backend/email): tracked, and sent once by the ``email.send`` job through the
    workspace's SendGrid. A local job: the send job makes the provider call."""
    assert job.workspace_id is not None
    _alert(session, job)
    to = recipients(session, job.workspace_id)
    if not to:
        raise PermanentFailure("this workspace has no owner or admin to mail")
    workspace = session.scalar(select(Workspace.name).where(Workspace.id == job.workspace_id))
    context = {
        "business_name": f"Integrations Hub ({workspace})" if workspace else "Integrations Hub",
        "recipient_name": None,
        "alert_text": str(job.payload["text"]),
        "alert_url": f"{get_settings().public_console_url.rstrip('/')}/health",
    }
    for address in to:
        email.queue_email(
            session,
            workspace_id=job.workspace_id,
            purpose="alert_notification",
            to_email=address,
            to_name=None,
            subject_type="operator",
            subject_id=None,
            context=context,
            # One e-mail per notice and person however often this job runs (a digest: an
            # address may be longer than the key's column).
            dedupe_key=f"{job.idempotency_key}:{hashlib.sha256(address.encode()).hexdigest()[:16]}",
        )
    _delivered(session, job, "e-mail")
