"""Reading sequences for the console: the Sequences page's overview (each sequence with its
enrolments by status and each step's e-mails counted) and a lead's enrolments (the lead page).
Scoped by workspace here, not only in the pages.

Tested in tests/email/test_sequences.py and tests/console/test_sequences.py.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from models import (
    EmailMessage,
    EmailSequence,
    EmailStatus,
    EnrolmentStatus,
    SequenceEnrolment,
    SequenceStep,
)

# The sequences (and a lead's enrolments) shown at most: a workspace has a handful.
PAGE_LIMIT = 100


@dataclass(frozen=True)
class StepView:
    id: int
    position: int
    delay_minutes: int
    purpose: str
    window_start_hour: int | None
    window_end_hour: int | None
    queued: int = 0
    sent: int = 0
    skipped: int = 0
    opened: int = 0
    clicked: int = 0


@dataclass(frozen=True)
class SequenceView:
    id: int
    name: str
    trigger: str
    paused: bool
    enrolled: int
    active: int
    completed: int
    stopped: int
    steps: list[StepView] = field(default_factory=list)


# Statuses of a message SendGrid took (sent, or an event came).
_SENT = tuple(
    s.value
    for s in EmailStatus
    if s not in (EmailStatus.QUEUED, EmailStatus.SKIPPED, EmailStatus.FAILED, EmailStatus.UNKNOWN)
)


def overview(session: Session, *, workspace_id: int) -> list[SequenceView]:
    """The workspace's sequences (at most ``PAGE_LIMIT``), each with its steps, how many leads
    it enrolled by status and, per step, its e-mails queued, sent, skipped, opened and clicked
    (a person's opens and clicks: machine opens are not counted). Counted by the database."""
    sequences = session.scalars(
        select(EmailSequence)
        .where(EmailSequence.workspace_id == workspace_id)
        .order_by(EmailSequence.id)
        .limit(PAGE_LIMIT)
    ).all()
    ids = [s.id for s in sequences]
    if not ids:
        return []
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for sequence_id, status, n in session.execute(
        select(SequenceEnrolment.sequence_id, SequenceEnrolment.status, func.count())
        .where(
            SequenceEnrolment.workspace_id == workspace_id,
            SequenceEnrolment.sequence_id.in_(ids),
        )
        .group_by(SequenceEnrolment.sequence_id, SequenceEnrolment.status)
    ):
        counts[sequence_id][status] = n
    steps = session.scalars(
        select(SequenceStep)
        .where(SequenceStep.workspace_id == workspace_id, SequenceStep.sequence_id.in_(ids))
        .order_by(SequenceStep.sequence_id, SequenceStep.position)
    ).all()
    per_step = _step_counts(session, workspace_id, [s.id for s in steps])
    by_sequence: dict[int, list[StepView]] = defaultdict(list)
    for step in steps:
        by_sequence[step.sequence_id].append(
            StepView(
                id=step.id,
                position=step.position,
                delay_minutes=step.delay_minutes,
                purpose=step.purpose,
                window_start_hour=step.window_start_hour,
                window_end_hour=step.window_end_hour,
                **per_step.get(step.id, {}),
            )
        )
    views = []
    for sequence in sequences:
        c = counts[sequence.id]
        views.append(
            SequenceView(
                id=sequence.id,
                name=sequence.name,
                trigger=sequence.trigger,
                paused=sequence.paused,
                enrolled=sum(c.values()),
                active=c.get(EnrolmentStatus.ACTIVE.value, 0),
                completed=c.get(EnrolmentStatus.COMPLETED.value, 0),
                stopped=c.get(EnrolmentStatus.STOPPED.value, 0),
                steps=by_sequence[sequence.id],
            )
        )
    return views


def _step_counts(
    session: Session, workspace_id: int, step_ids: list[int]
) -> dict[int, dict[str, int]]:
    if not step_ids:
        return {}

    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    rows = session.execute(
        select(
            EmailMessage.sequence_step_id,
            count(EmailMessage.status == EmailStatus.QUEUED.value),
            count(EmailMessage.status.in_(_SENT)),
            count(EmailMessage.status == EmailStatus.SKIPPED.value),
            count(EmailMessage.first_open_at.is_not(None)),
            count(EmailMessage.first_click_at.is_not(None)),
        )
        .where(
            EmailMessage.workspace_id == workspace_id,
            EmailMessage.sequence_step_id.in_(step_ids),
        )
        .group_by(EmailMessage.sequence_step_id)
    ).all()
    return {
        row[0]: dict(
            queued=int(row[1]),
            sent=int(row[2]),
            skipped=int(row[3]),
            opened=int(row[4]),
            clicked=int(row[5]),
        )
        for row in rows
    }


@dataclass(frozen=True)
class EnrolmentView:
    id: int
    sequence_id: int
    sequence_name: str
    status: str
    next_position: int
    next_due_at: dt.datetime | None
    stop_reason: str | None
    stopped_at: dt.datetime | None
    enrolled_at: dt.datetime


def lead_enrolments(session: Session, *, workspace_id: int, lead_id: int) -> list[EnrolmentView]:
    """A lead's enrolments, newest first (the lead page shows them, with a Stop for active
    ones: ``stop_by_operator``)."""
    rows = session.execute(
        select(SequenceEnrolment, EmailSequence.name)
        .join(EmailSequence, EmailSequence.id == SequenceEnrolment.sequence_id)
        .where(
            SequenceEnrolment.workspace_id == workspace_id,
            SequenceEnrolment.lead_id == lead_id,
        )
        .order_by(SequenceEnrolment.id.desc())
        .limit(PAGE_LIMIT)
    ).all()
    return [
        EnrolmentView(
            id=e.id,
            sequence_id=e.sequence_id,
            sequence_name=name,
            status=e.status,
            next_position=e.next_position,
            next_due_at=e.next_due_at,
            stop_reason=e.stop_reason,
            stopped_at=e.stopped_at,
            enrolled_at=e.created_at,
        )
        for e, name in rows
    ]
