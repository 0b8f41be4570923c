"""Follow-up sequences: enrolling a lead when a trigger happens, and sending each step's e-mail
when it is due (the 15-minute job, backend/email/jobs.py).

- **Enrol** (``enrol``): a lead is enrolled once per sequence (the unique (sequence, lead)
  constraint, inserted ignoring a conflict) in every non-paused sequence of the trigger in its
  workspace, in the caller's transaction: ``lead_created`` from lead capture,
  ``proposal_sent`` where a proposal is mailed, ``contract_pending`` from the pipeline (issue 16
  calls ``enrol(session, workspace_id=..., lead_id=..., trigger="contract_pending", at=...,
  context={"amount": ..., "due_date": ..., "payment_url": ...})``). The first step is due
  ``at`` + its delay, moved into its send window (backend/email/sequences/windows.py).
- **Send** (``run_due``): active enrolments of non-paused sequences whose step is due are
  taken in batches, each batch one transaction, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so
  that two schedulers never take the same one. Each step is queued through the outbox
  (``service.queue_email``) with the dedupe key ``sequence:<enrolment>:step:<position>``, so a
  rerun or a crash never mails a step twice; the enrolment then moves to the next step (due
  when its delay has passed since this one went, in its window) or is completed after the last.
- **Consent**: a step of a marketing purpose (``sequence_followup``) goes only to a lead who
  gave marketing consent; without it the step is recorded skipped ("No marketing consent") and
  the enrolment goes on to the next step (a reminder may still go). An address suppressed for
  the step's group is recorded skipped by ``queue_email`` and the enrolment stops (unsubscribed,
  bounced, reported spam): the same end the event would have brought.
- **Stops** are backend/email/sequences/stops.py's; an operator's goes through
  ``stop_by_operator`` here (owners and admins), Pause and Resume through ``pause`` and
  ``resume``: a paused sequence's enrolments wait and go on where they were when resumed.

Tested in tests/email/test_sequences.py.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.db import conflict_insert
from backend.email import purposes, service
from backend.email.sequences import stops, windows
from backend.platform import audit
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, NotFound
from models import (
    EmailSequence,
    EmailStatus,
    EnrolmentStatus,
    Lead,
    SequenceEnrolment,
    SequenceStep,
    Workspace,
    utcnow,
)

TRIGGERS = ("lead_created", "proposal_sent", "contract_pending")
# What a step may send: mail a lead may refuse (never a receipt or a contract).
STEP_PURPOSES = ("sequence_followup", "proposal_reminder", "payment_reminder")
BATCH = 200
NO_CONSENT = "No marketing consent"


def dedupe_key(enrolment_id: int, position: int) -> str:
    return f"sequence:{enrolment_id}:step:{position}"


# -- defining ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepSpec:
    delay_minutes: int
    purpose: str
    window_start_hour: int | None = None
    window_end_hour: int | None = None


def create_sequence(
    session: Session,
    *,
    workspace_id: int,
    name: str,
    trigger: str,
    steps: Sequence[StepSpec],
    paused: bool = False,
) -> EmailSequence:
    """A sequence and its steps (positions 1, 2, ...), checked: a known trigger, step purposes
    a lead may refuse, delays of zero or more, whole windows."""
    if trigger not in TRIGGERS:
        raise InvalidInput(f"A sequence starts on one of {', '.join(TRIGGERS)}.")
    if not name.strip():
        raise InvalidInput("A sequence needs a name.")
    if not steps:
        raise InvalidInput("A sequence needs at least one step.")
    for spec in steps:
        if spec.purpose not in STEP_PURPOSES:
            raise InvalidInput(f"A step sends one of {', '.join(STEP_PURPOSES)}.")
        if spec.delay_minutes < 0:
            raise InvalidInput("A step's delay is zero or more.")
        try:
            windows.check_window(spec.window_start_hour, spec.window_end_hour)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
    sequence = EmailSequence(
        workspace_id=workspace_id, name=name.strip()[:120], trigger=trigger, paused=paused
    )
    session.add(sequence)
    session.flush()
    for position, spec in enumerate(steps, start=1):
        session.add(
            SequenceStep(
                workspace_id=workspace_id,
                sequence_id=sequence.id,
                position=position,
                delay_minutes=spec.delay_minutes,
                purpose=spec.purpose,
                window_start_hour=spec.window_start_hour,
                window_end_hour=spec.window_end_hour,
            )
        )
    session.flush()
    return sequence


# -- enrolling --------------------------------------------------------------------------------


def _due(at: dt.datetime, step: SequenceStep, zone: dt.tzinfo) -> dt.datetime:
    return windows.in_window(
        at + dt.timedelta(minutes=step.delay_minutes),
        step.window_start_hour,
        step.window_end_hour,
        zone,
    )


def enrol(
    session: Session,
    *,
    workspace_id: int,
    lead_id: int,
    trigger: str,
    at: dt.datetime | None = None,
    context: dict[str, Any] | None = None,
) -> list[int]:
    """Enrol the lead in every non-paused sequence of ``trigger`` in its workspace (not again
    in one it is or was enrolled in), in the caller's transaction; the new enrolments' ids.
    ``context``: template variables the trigger knows, for the steps' e-mails."""
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown sequence trigger {trigger!r}")
    at = at or utcnow()
    lead = session.scalars(
        select(Lead).where(Lead.id == lead_id, Lead.workspace_id == workspace_id)
    ).first()
    if lead is None:
        return []
    first_steps = session.scalars(
        select(SequenceStep)
        .join(EmailSequence, EmailSequence.id == SequenceStep.sequence_id)
        .where(
            EmailSequence.workspace_id == workspace_id,
            EmailSequence.trigger == trigger,
            EmailSequence.paused.is_(False),
        )
        .order_by(SequenceStep.sequence_id, SequenceStep.position)
    ).all()
    zone = windows.zone_for(lead.time_zone)
    made: list[int] = []
    seen: set[int] = set()
    for step in first_steps:
        if step.sequence_id in seen:
            continue  # not its first step
        seen.add(step.sequence_id)
        enrolment_id = session.execute(
            conflict_insert(session, SequenceEnrolment)
            .values(
                workspace_id=workspace_id,
                sequence_id=step.sequence_id,
                lead_id=lead_id,
                status=EnrolmentStatus.ACTIVE.value,
                next_position=step.position,
                next_due_at=_due(at, step, zone),
                context=dict(context or {}),
                created_at=at,
            )
            .on_conflict_do_nothing(index_elements=["sequence_id", "lead_id"])
            .returning(SequenceEnrolment.id)
        ).scalar()
        if enrolment_id is not None:
            made.append(enrolment_id)
    return made


# -- sending ----------------------------------------------------------------------------------


@dataclass
class BatchResult:
    taken: int = 0  # enrolments taken (each moved on: a step queued or skipped, or an end)
    queued: int = 0  # steps whose e-mail was recorded (queued or skipped) by this run


def run_due(engine: Engine, *, now: dt.datetime | None = None, batch: int = BATCH) -> int:
    """The 15-minute job: every due step queued, a batch per transaction; how many steps."""
    now = now or utcnow()
    steps = 0
    while True:
        with Session(engine) as session:
            result = run_batch(session, now=now, limit=batch)
            session.commit()
        steps += result.queued
        # Until a batch finds nothing: a short batch may only mean that another run holds
        # the rest, whose next steps (a delay of 0) may be due when it commits.
        if result.taken == 0:
            return steps


def run_batch(session: Session, *, now: dt.datetime, limit: int = BATCH) -> BatchResult:
    """Take up to ``limit`` due enrolments (locked, skipping those another run holds) and move
    each on by one step, in the caller's transaction."""
    enrolments = session.scalars(
        select(SequenceEnrolment)
        .join(EmailSequence, EmailSequence.id == SequenceEnrolment.sequence_id)
        .where(
            SequenceEnrolment.status == EnrolmentStatus.ACTIVE.value,
            SequenceEnrolment.next_due_at <= now,
            EmailSequence.paused.is_(False),
        )
        .order_by(SequenceEnrolment.next_due_at, SequenceEnrolment.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=SequenceEnrolment)
    ).all()
    result = BatchResult(taken=len(enrolments))
    if not enrolments:
        return result
    steps = _steps(session, {e.sequence_id for e in enrolments})
    leads = {
        lead.id: lead
        for lead in session.scalars(
            select(Lead).where(Lead.id.in_({e.lead_id for e in enrolments}))
        )
    }
    workspaces = {
        ws.id: ws
        for ws in session.scalars(
            select(Workspace).where(Workspace.id.in_({e.workspace_id for e in enrolments}))
        )
    }
    for enrolment in enrolments:
        lead = leads.get(enrolment.lead_id)
        if lead is None or lead.workspace_id != enrolment.workspace_id:
            _stop(enrolment, "The lead is gone", now)
            continue
        step = _at_or_after(steps[enrolment.sequence_id], enrolment.next_position)
        if step is None:
            _complete(enrolment)
            continue
        if _send(session, enrolment, step, lead, workspaces[enrolment.workspace_id], now):
            result.queued += 1
        if enrolment.status != EnrolmentStatus.ACTIVE.value:
            continue  # stopped by the step (suppressed, or its variables missing)
        following = _at_or_after(steps[enrolment.sequence_id], step.position + 1)
        if following is None:
            enrolment.next_position = step.position + 1
            _complete(enrolment)
        else:
            enrolment.next_position = following.position
            enrolment.next_due_at = _due(now, following, windows.zone_for(lead.time_zone))
    session.flush()
    return result


def _steps(session: Session, sequence_ids: Iterable[int]) -> dict[int, list[SequenceStep]]:
    found: dict[int, list[SequenceStep]] = defaultdict(list)
    for step in session.scalars(
        select(SequenceStep)
        .where(SequenceStep.sequence_id.in_(set(sequence_ids)))
        .order_by(SequenceStep.sequence_id, SequenceStep.position)
    ):
        found[step.sequence_id].append(step)
    return found


def _at_or_after(steps: list[SequenceStep], position: int) -> SequenceStep | None:
    return next((step for step in steps if step.position >= position), None)


def _complete(enrolment: SequenceEnrolment) -> None:
    enrolment.status = EnrolmentStatus.COMPLETED.value
    enrolment.next_due_at = None


def _stop(enrolment: SequenceEnrolment, reason: str, at: dt.datetime) -> None:
    enrolment.status = EnrolmentStatus.STOPPED.value
    enrolment.stop_reason = reason[:200]
    enrolment.stopped_at = at
    enrolment.next_due_at = None


def step_context(workspace: Workspace, lead: Lead, enrolment: SequenceEnrolment) -> dict[str, Any]:
    """What a step's template is given: the business and the lead, then what the trigger
    gave (a proposal's title and link...), which wins."""
    return {
        "business_name": workspace.name,
        "recipient_name": lead.name,
        "service_type": lead.service_type or "your event",
        # The business's hosted form (backend/api/forms.py) until leads have a page of theirs.
        "contact_url": f"{get_settings().public_sidecar_url.rstrip('/')}/forms/{workspace.slug}",
        **(enrolment.context or {}),
    }


def _send(
    session: Session,
    enrolment: SequenceEnrolment,
    step: SequenceStep,
    lead: Lead,
    workspace: Workspace,
    now: dt.datetime,
) -> bool:
    """Queue the step's e-mail; False (and the enrolment stopped) when the trigger did not
    give what its template needs."""
    context = step_context(workspace, lead, enrolment)
    missing = sorted(set(purposes.purpose(step.purpose).sample) - set(context))
    if missing:
        _stop(
            enrolment,
            f"Step {step.position} needs {', '.join(missing)}, which its trigger did not give",
            now,
        )
        return False
    marketing = purposes.purpose(step.purpose).group == purposes.MARKETING
    message = service.queue_email(
        session,
        workspace_id=enrolment.workspace_id,
        purpose=step.purpose,
        to_email=lead.email,
        to_name=lead.name,
        subject_type="lead",
        subject_id=lead.id,
        context=context,
        dedupe_key=dedupe_key(enrolment.id, step.position),
        skip=NO_CONSENT if marketing and not lead.marketing_consent else None,
        sequence_step_id=step.id,
    )
    if message.status == EmailStatus.SKIPPED.value and message.skip_reason != NO_CONSENT:
        suppressed = service.suppressions(
            session, workspace_id=enrolment.workspace_id, emails=[lead.email], purpose=step.purpose
        ).get(message.to_email)
        reason = stops.BY_SUPPRESSION.get(suppressed.reason) if suppressed else None
        _stop(enrolment, reason or stops.UNSUBSCRIBED, now)
    return True


# -- operators --------------------------------------------------------------------------------


def _sequence(session: Session, workspace_id: int, sequence_id: int) -> EmailSequence:
    sequence = session.scalars(
        select(EmailSequence).where(
            EmailSequence.id == sequence_id, EmailSequence.workspace_id == workspace_id
        )
    ).first()
    if sequence is None:
        raise NotFound("No such sequence in this workspace; reload the page.")
    return sequence


def pause(session: Session, *, actor: Actor, sequence_id: int) -> None:
    """Hold the sequence: no step of it goes and no lead is enrolled until it is resumed."""
    actor.require_change("pause a sequence")
    sequence = _sequence(session, actor.workspace_id, sequence_id)
    if not sequence.paused:
        sequence.paused = True
        audit.record(
            session, actor=actor, action="sequence.pause", target=f"sequence:{sequence.id}"
        )


def resume(session: Session, *, actor: Actor, sequence_id: int) -> None:
    """Let the sequence go on: steps that fell due while it was paused go at the next run."""
    actor.require_change("resume a sequence")
    sequence = _sequence(session, actor.workspace_id, sequence_id)
    if sequence.paused:
        sequence.paused = False
        audit.record(
            session, actor=actor, action="sequence.resume", target=f"sequence:{sequence.id}"
        )


def stop_by_operator(
    session: Session, *, actor: Actor, enrolment_id: int, at: dt.datetime | None = None
) -> bool:
    """An operator's Stop of one enrolment of their workspace (owners and admins)."""
    actor.require_change("stop a sequence")
    stopped = stops.stop_enrolment(
        session,
        workspace_id=actor.workspace_id,
        enrolment_id=enrolment_id,
        reason=f"Stopped by {actor.name or actor.email or 'an operator'}",
        at=at or utcnow(),
    )
    if stopped:
        audit.record(
            session, actor=actor, action="sequence.stop", target=f"enrolment:{enrolment_id}"
        )
    return stopped
