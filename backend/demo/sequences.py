"""The studio's follow-up sequences for the demo (called by backend/demo/seed.py): a running
sequence for new inquiries and paused deposit nudges (backend/demo/leads.py adds the proposal
follow-up), with leads enrolled in each state (active, waiting, completed, stopped by a reply)
and their steps' e-mails already delivered, opened or clicked, so the Sequences page shows
figures from the first start.

Tested in tests/demo/test_seed_sequences.py.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from backend.email.sequences import service as sequences
from backend.email.sequences import stops
from backend.email.sequences import views as sequence_views
from backend.email.sequences.service import StepSpec
from models import EmailMessage, EmailStatus, EnrolmentStatus, Lead, SequenceEnrolment

DAY = dt.timedelta(days=1)


def fill(session: Session, workspace_id: int, leads: list[Lead], now: dt.datetime) -> None:
    """``leads``: Hannah (consented, signed, deposit due), Bright Steps (no consent), Rita
    (replied)."""
    hannah, bright, rita = leads
    hannah.time_zone = "America/New_York"
    rita.time_zone = "Europe/London"
    follow_up = sequences.create_sequence(
        session,
        workspace_id=workspace_id,
        name="New inquiry follow-up",
        trigger="lead_created",
        steps=[
            StepSpec(24 * 60, "sequence_followup", 9, 17),
            StepSpec(4 * 24 * 60, "sequence_followup", 9, 17),
        ],
    )
    nudges = sequences.create_sequence(
        session,
        workspace_id=workspace_id,
        name="Deposit nudges",
        trigger="contract_pending",
        steps=[
            StepSpec(2 * 24 * 60, "payment_reminder"),
            StepSpec(5 * 24 * 60, "payment_reminder"),
        ],
        paused=True,
    )
    steps = {
        view.id: view.steps for view in sequence_views.overview(session, workspace_id=workspace_id)
    }
    first, second = steps[follow_up.id]

    def enrolment(lead: Lead, sequence_id: int, days_ago: int, **values: object) -> int:
        row = SequenceEnrolment(
            workspace_id=workspace_id,
            sequence_id=sequence_id,
            lead_id=lead.id,
            created_at=now - days_ago * DAY,
            **values,
        )
        session.add(row)
        session.flush()
        return row.id

    def mailed(lead: Lead, enrolment_id: int, step: sequence_views.StepView, days_ago: int,
               status: EmailStatus, skip: str | None = None) -> None:  # fmt: skip
        at = now - days_ago * DAY
        opened = status in (EmailStatus.OPENED, EmailStatus.CLICKED)
        session.add(
            EmailMessage(
                workspace_id=workspace_id,
                purpose=step.purpose,
                template=step.purpose,
                to_email=lead.email,
                to_name=lead.name,
                subject_type="lead",
                subject_id=lead.id,
                context={},
                dedupe_key=sequences.dedupe_key(enrolment_id, step.position),
                status=status.value,
                skip_reason=skip,
                sequence_step_id=step.id,
                sent_at=None if skip else at,
                delivered_at=None if skip else at,
                first_open_at=at + dt.timedelta(hours=2) if opened else None,
                last_open_at=at + dt.timedelta(hours=2) if opened else None,
                open_count=1 if opened else 0,
                first_click_at=at + dt.timedelta(hours=3)
                if status is EmailStatus.CLICKED
                else None,
                last_click_at=at + dt.timedelta(hours=3) if status is EmailStatus.CLICKED else None,
                click_count=1 if status is EmailStatus.CLICKED else 0,
                created_at=at,
            )
        )

    # Hannah: both follow-ups went (the first clicked), then she signed.
    hannah_id = enrolment(
        hannah, follow_up.id, 8, status=EnrolmentStatus.COMPLETED.value, next_position=3
    )
    mailed(hannah, hannah_id, first, 7, EmailStatus.CLICKED)
    mailed(hannah, hannah_id, second, 3, EmailStatus.OPENED)
    # Her deposit is not paid yet: the nudges wait while the sequence is paused.
    enrolment(
        hannah,
        nudges.id,
        1,
        next_position=1,
        next_due_at=now + DAY,
        context={
            "amount": "$700.00",
            "due_date": f"{now + 7 * DAY:%B} {(now + 7 * DAY).day}, {(now + 7 * DAY).year}",
            "payment_url": "https://pay.example/reel-moments/deposit",
        },
    )
    # Bright Steps gave no marketing consent: the first follow-up was skipped; the second is
    # due in two days.
    bright_id = enrolment(bright, follow_up.id, 2, next_position=2, next_due_at=now + 2 * DAY)
    mailed(bright, bright_id, first, 1, EmailStatus.SKIPPED, skip=sequences.NO_CONSENT)
    # Rita answered the first follow-up: her reply stopped the sequence.
    rita_id = enrolment(
        rita,
        follow_up.id,
        5,
        status=EnrolmentStatus.STOPPED.value,
        next_position=2,
        stop_reason=stops.REPLIED,
        stopped_at=now - 3 * DAY,
    )
    mailed(rita, rita_id, first, 4, EmailStatus.DELIVERED)
    session.flush()
