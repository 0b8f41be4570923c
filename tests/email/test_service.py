"""Queueing: the tracking row and its send job in one transaction, the address normalised, a
repeated dedupe key queueing nothing, a suppressed address skipped with its reason, and a
workspace's SendGrid dynamic template chosen over the repository's."""

from __future__ import annotations

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.email import service
from models import EmailMessage, EmailStatus, EmailTemplateChoice, OutboxJob
from tests.email.support import queue, workspace_with_sendgrid


def _jobs(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(OutboxJob.idempotency_key).order_by(OutboxJob.id)))


def test_queueing_writes_the_message_and_its_send_job_together(engine: Engine) -> None:
    ws = workspace_with_sendgrid(engine, None)
    with Session(engine) as session:
        message = service.queue_email(
            session,
            workspace_id=ws,
            purpose="payment_request",
            to_email="  Jane.Doe@Example.COM ",
            to_name="Jane",
            subject_type="client",
            subject_id=7,
            context={"amount": "$1"},
            dedupe_key="invoice:7:request",
        )
        session.rollback()  # the caller's transaction decides: neither row stays
    assert _jobs(engine) == []
    (message_id,) = queue(engine, ws, ["  Jane.Doe@Example.COM "])
    with Session(engine) as session:
        message = session.get_one(EmailMessage, message_id)
        assert message.to_email == "jane.doe@example.com"
        assert message.status == EmailStatus.QUEUED
        assert message.template == "payment_request"
    assert _jobs(engine) == [f"email.send:{message_id}"]


def test_a_repeated_dedupe_key_returns_the_first_message_and_queues_nothing(
    engine: Engine,
) -> None:
    ws = workspace_with_sendgrid(engine, None)
    first = queue(engine, ws, ["jane@example.com"])
    again = queue(engine, ws, ["other@example.com"])
    assert first == again
    assert len(_jobs(engine)) == 1


def test_a_suppressed_address_is_skipped_with_its_reason_and_never_queued(
    engine: Engine,
) -> None:
    ws = workspace_with_sendgrid(engine, None)
    with Session(engine) as session:
        service.suppress(
            session, workspace_id=ws, email="Gone@Example.com", groups=["all"], reason="bounce"
        )
        service.suppress(
            session,
            workspace_id=ws,
            email="quiet@example.com",
            groups=["reminders"],
            reason="unsubscribe",
        )
        session.commit()
    gone, quiet_reminder = queue(
        engine, ws, ["gone@example.com", "quiet@example.com"], purpose="payment_reminder"
    )
    (quiet_receipt,) = queue(engine, ws, ["quiet@example.com"], purpose="payment_request")
    with Session(engine) as session:
        rows = {m: session.get_one(EmailMessage, m) for m in (gone, quiet_reminder)}
        assert rows[gone].status == EmailStatus.SKIPPED
        assert rows[gone].skip_reason is not None
        assert rows[gone].skip_reason.startswith("Suppressed (bounce, all e-mail) since ")
        assert rows[quiet_reminder].status == EmailStatus.SKIPPED
        assert "unsubscribe, reminders" in (rows[quiet_reminder].skip_reason or "")
        # A transactional purpose ignores the unsubscribe from reminders.
        assert session.get_one(EmailMessage, quiet_receipt).status == EmailStatus.QUEUED
    assert _jobs(engine) == [f"email.send:{quiet_receipt}"]


def test_a_workspace_may_use_its_sendgrid_dynamic_template(engine: Engine) -> None:
    ws = workspace_with_sendgrid(engine, None)
    with Session(engine) as session:
        session.add(
            EmailTemplateChoice(
                workspace_id=ws, purpose="payment_request", sendgrid_template_id="d-1"
            )
        )
        session.commit()
    (message_id,) = queue(engine, ws, ["jane@example.com"])
    with Session(engine) as session:
        assert session.get_one(EmailMessage, message_id).template == "sendgrid:d-1"
        assert session.scalar(select(func.count()).select_from(OutboxJob)) == 1
