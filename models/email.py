"""E-mail the hub sends for a workspace, what SendGrid tells about it, who must not get more,
and the lead-side records e-mail works with: proposal templates, a lead's messages, sequences.

Statuses are plain strings checked in code (``EmailStatus``, ``EnrolmentStatus``), not CHECK
constraints: SendGrid's event vocabulary grows, and on SQLite a CHECK can only change by
rebuilding the table (migration 0010 had to).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAtMixin, IdMixin


class EmailStatus(enum.StrEnum):
    """Where a message stands. Before SendGrid: queued, skipped (suppressed or no consent: the
    reason is on the row), failed (refused by SendGrid), unknown (the request left and no
    answer came: settled by the send job, docs/DESIGN.md). After: SendGrid's events, moving
    forward only (``backend/email/events.py`` orders them)."""

    QUEUED = "queued"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SENT = "sent"
    PROCESSED = "processed"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    BOUNCED = "bounced"
    DROPPED = "dropped"
    SPAM_REPORT = "spam_report"
    UNSUBSCRIBED = "unsubscribed"


class EmailMessage(IdMixin, CreatedAtMixin, Base):
    """One e-mail to one recipient: the tracking record, written before it is sent, in the
    same transaction as the outbox job that sends it."""

    __tablename__ = "email_messages"
    __table_args__ = (
        Index("ix_email_messages_workspace_id_created_at", "workspace_id", "created_at"),
        Index("ix_email_messages_subject", "workspace_id", "subject_type", "subject_id"),
        Index("ix_email_messages_send_job_id", "send_job_id"),
        # The same occasion (a lead's proposal, the n-th step of an enrolment) is mailed once
        # however often the code that asks for it runs.
        UniqueConstraint("workspace_id", "dedupe_key"),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(40))
    # The repository template's name, or "sendgrid:<dynamic template id>".
    template: Mapped[str] = mapped_column(String(120))
    to_email: Mapped[str] = mapped_column(String(254))
    to_name: Mapped[str | None] = mapped_column(String(120))
    # Whom it concerns: lead | client | buyer | operator, with that row's id.
    subject_type: Mapped[str | None] = mapped_column(String(16))
    subject_id: Mapped[int | None]
    # The template's variables (personal data: exported and erased with the person).
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(160))
    status: Mapped[str] = mapped_column(String(16), default=EmailStatus.QUEUED.value)
    skip_reason: Mapped[str | None] = mapped_column(Text)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # The outbox job that sends it (its batch); no foreign key: jobs are purged first.
    send_job_id: Mapped[int | None]
    sendgrid_message_id: Mapped[str | None] = mapped_column(String(80), index=True)
    sent_at: Mapped[dt.datetime | None]
    delivered_at: Mapped[dt.datetime | None]
    first_open_at: Mapped[dt.datetime | None]
    last_open_at: Mapped[dt.datetime | None]
    open_count: Mapped[int] = mapped_column(default=0)
    # Opens a mail provider's proxy made (sg_machine_open): not a person's.
    machine_open_count: Mapped[int] = mapped_column(default=0)
    first_click_at: Mapped[dt.datetime | None]
    last_click_at: Mapped[dt.datetime | None]
    click_count: Mapped[int] = mapped_column(default=0)
    last_event_at: Mapped[dt.datetime | None]
    # The sequence step it was sent for (the Sequences page's per-step counts). No foreign
    # key: migration 0014 says why.
    sequence_step_id: Mapped[int | None] = mapped_column(index=True)


class EmailEvent(IdMixin, Base):
    """Each SendGrid event applied, once: SendGrid delivers an event several times."""

    __tablename__ = "email_events"
    __table_args__ = (UniqueConstraint("workspace_id", "sg_event_id"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    sg_event_id: Mapped[str] = mapped_column(String(120))
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("email_messages.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(24))
    at: Mapped[dt.datetime]


class EmailSuppression(IdMixin, CreatedAtMixin, Base):
    """An address that gets no more mail of a group from this workspace: ``all`` after a hard
    bounce or a spam report, a purpose group (``marketing``, ``reminders``) after an
    unsubscribe. Transactional purposes ignore the groups (receipts, contracts)."""

    __tablename__ = "email_suppressions"
    __table_args__ = (UniqueConstraint("workspace_id", "email", "purpose_group"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    purpose_group: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(24))
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("email_messages.id", ondelete="SET NULL")
    )


class EmailTemplateChoice(IdMixin, Base):
    """A workspace's SendGrid dynamic template for a purpose, instead of the repository's."""

    __tablename__ = "email_template_choices"
    __table_args__ = (UniqueConstraint("workspace_id", "purpose"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(40))
    sendgrid_template_id: Mapped[str] = mapped_column(String(80))


class ProposalTemplate(IdMixin, CreatedAtMixin, Base):
    """What a new lead of a service type is sent at once, when published."""

    __tablename__ = "proposal_templates"
    __table_args__ = (Index("ix_proposal_templates_workspace_id", "workspace_id", "service_type"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    service_type: Mapped[str] = mapped_column(String(60))
    body: Mapped[str] = mapped_column(Text)
    published: Mapped[bool] = mapped_column(default=False)


class LeadMessage(IdMixin, Base):
    """A lead's history: each inquiry's message, each reply (Inbound Parse), an operator's note."""

    __tablename__ = "lead_messages"
    __table_args__ = (Index("ix_lead_messages_lead_id_at", "lead_id", "at"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime]
    # inquiry | reply | note
    kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)


class EnrolmentStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    STOPPED = "stopped"


class EmailSequence(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "email_sequences"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    # lead_created | proposal_sent | contract_pending
    trigger: Mapped[str] = mapped_column(String(24))
    paused: Mapped[bool] = mapped_column(default=False)


class SequenceStep(IdMixin, Base):
    __tablename__ = "sequence_steps"
    __table_args__ = (UniqueConstraint("sequence_id", "position"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    sequence_id: Mapped[int] = mapped_column(ForeignKey("email_sequences.id", ondelete="CASCADE"))
    position: Mapped[int]
    # After the previous step (or the enrolment, for the first).
    delay_minutes: Mapped[int]
    purpose: Mapped[str] = mapped_column(String(40))
    # A send window in the recipient's time zone, in hours of the day (9 and 17: 9:00 to 17:00).
    window_start_hour: Mapped[int | None]
    window_end_hour: Mapped[int | None]


class SequenceEnrolment(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "sequence_enrolments"
    __table_args__ = (
        UniqueConstraint("sequence_id", "lead_id"),
        # The 15-minute job's scan: active enrolments due now.
        Index("ix_sequence_enrolments_due", "status", "next_due_at"),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    sequence_id: Mapped[int] = mapped_column(ForeignKey("email_sequences.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=EnrolmentStatus.ACTIVE.value)
    # The position of the next step to send, and when.
    next_position: Mapped[int] = mapped_column(default=1)
    next_due_at: Mapped[dt.datetime | None]
    stop_reason: Mapped[str | None] = mapped_column(String(200))
    stopped_at: Mapped[dt.datetime | None]
    # The template variables the trigger knew (a proposal's title and link...), for each step's
    # e-mail: personal data, exported and erased with the lead. Migration 0014.
    context: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
