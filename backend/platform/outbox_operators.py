"""What an operator does to the outbox from the Jobs page: pause and resume a kind (for their own
workspace), replay dead jobs, "Retry now" on a waiting one; the platform's pause of a kind for
every workspace (the CLI's only); and waking the jobs waiting on a provider that recovered.

Split from ``outbox`` (kinds, enqueue, claim, outcomes), which the workers need; these are
the operators' levers, each audited.

Tested in tests/platform/test_outbox.py and test_outbox_operators.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, delete, func, select, text, update
from sqlalchemy.orm import Session

from backend.platform import audit, circuits, outbox, turns
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput
from backend.platform.provider_failures import provider_name
from models import JobKindPause, JobStatus, OutboxJob, utcnow


def _require_kind(kind: str) -> None:
    if kind not in outbox.kinds():
        raise InvalidInput(f"There is no job kind {kind!r}.")


def _pause_of(session: Session, *, kind: str, workspace_id: int | None) -> JobKindPause | None:
    scope = (
        JobKindPause.workspace_id.is_(None)
        if workspace_id is None
        else JobKindPause.workspace_id == workspace_id
    )
    return session.scalars(select(JobKindPause).where(JobKindPause.kind == kind, scope)).first()


def pause_kind(session: Session, *, actor: Actor, kind: str) -> None:
    """Hold the kind's jobs of the actor's workspace (only those: other workspaces' run on)."""
    actor.require_change("pause jobs")
    _require_kind(kind)
    if _pause_of(session, kind=kind, workspace_id=actor.workspace_id) is None:
        session.add(JobKindPause(workspace_id=actor.workspace_id, kind=kind, paused_by=actor.label))
        audit.record(session, actor=actor, action="jobs.pause", target=f"kind:{kind}")


def resume_kind(session: Session, *, actor: Actor, kind: str) -> None:
    """Lift the actor's workspace's pause of the kind: its own, never another workspace's, nor
    the platform's (which only the CLI lifts; the operator is told so)."""
    actor.require_change("resume jobs")
    pause = _pause_of(session, kind=kind, workspace_id=actor.workspace_id)
    if pause is None:
        if _pause_of(session, kind=kind, workspace_id=None) is not None:
            raise InvalidInput(
                f"{kind} is paused by the platform for every workspace (a provider incident, "
                "say): its jobs run again when the platform's operators resume it."
            )
        raise InvalidInput(f"{kind} is not paused in this workspace; reload the Jobs page.")
    session.delete(pause)
    audit.record(session, actor=actor, action="jobs.resume", target=f"kind:{kind}")


# -- the platform's pauses: for every workspace, only from the CLI (backend/cli.py) -----------


def pause_platform(session: Session, *, kind: str, by: str = "cli") -> bool:
    """Hold the kind's jobs of every workspace (and the platform's own). False if it already
    was. Not an operator's lever: an owner of one workspace must not stop another's work."""
    _require_kind(kind)
    if _pause_of(session, kind=kind, workspace_id=None) is not None:
        return False
    session.add(JobKindPause(workspace_id=None, kind=kind, paused_by=by))
    audit.record(session, actor=by, action="jobs.pause_platform", target=f"kind:{kind}")
    return True


def resume_platform(session: Session, *, kind: str, by: str = "cli") -> bool:
    """Lift the platform's pause of the kind (workspaces' own pauses stay). False if there was
    none."""
    result = session.execute(
        delete(JobKindPause).where(JobKindPause.kind == kind, JobKindPause.workspace_id.is_(None))
    )
    if not getattr(result, "rowcount", 0):
        return False
    audit.record(session, actor=by, action="jobs.resume_platform", target=f"kind:{kind}")
    return True


def _dead_filter(
    workspace_id: int, kind: str | None, since: dt.datetime | None, job_id: int | None
) -> Any:
    conditions = [OutboxJob.workspace_id == workspace_id, OutboxJob.status == JobStatus.DEAD]
    if kind:
        conditions.append(OutboxJob.kind == kind)
    if since:
        conditions.append(OutboxJob.finished_at >= since)
    if job_id is not None:
        conditions.append(OutboxJob.id == job_id)
    return and_(*conditions)


def preview_replay(
    session: Session,
    *,
    workspace_id: int,
    kind: str | None = None,
    since: dt.datetime | None = None,
    job_id: int | None = None,
) -> int:
    """How many dead jobs a replay with these filters would run again."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(OutboxJob)
            .where(_dead_filter(workspace_id, kind, since, job_id))
        )
        or 0
    )


def replay(
    session: Session,
    *,
    actor: Actor,
    kind: str | None = None,
    since: dt.datetime | None = None,
    job_id: int | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Dead jobs of this workspace back to pending with fresh attempts; same idempotency keys,
    so what had already reached the provider is not done twice."""
    actor.require_change("replay jobs")
    now = now or utcnow()
    replayed = list(
        session.scalars(
            select(OutboxJob.id).where(_dead_filter(actor.workspace_id, kind, since, job_id))
        )
    )
    result = session.execute(
        update(OutboxJob)
        .where(_dead_filter(actor.workspace_id, kind, since, job_id))
        .values(
            status=JobStatus.PENDING,
            attempts=0,
            run_after=now,
            finished_at=None,
            lease_owner=None,
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    # Back in the queue in turn, after what other workspaces queued meanwhile (fair claims).
    turns.requeue_in_turn(session, replayed, now=now)
    audit.record(
        session,
        actor=actor,
        action="jobs.replay",
        target=f"kind:{kind or 'any'}",
        details={"jobs": count, "job_id": job_id, "since": since.isoformat() if since else None},
    )
    return count


def wake_waiting(
    session: Session,
    *,
    provider: str,
    workspace_id: int | None,
    now: dt.datetime | None = None,
) -> int:
    """Jobs of one account (the workspace's at ``provider``; None: the platform's) waiting
    after a failure are due now: its breaker closed again, or its integration recovered.
    Waiting out the rest of a backoff meant for an outage that has ended would only delay the
    work. Another workspace's jobs are not touched: its account did not answer. Returns how
    many moved."""
    now = now or utcnow()
    conditions = [
        OutboxJob.circuit_key == circuits.key_for(provider, workspace_id),
        OutboxJob.status == JobStatus.PENDING,
        outbox.FAILED_BEFORE,
        OutboxJob.run_after > now,
    ]
    result = session.execute(
        update(OutboxJob)
        .where(*conditions)
        .values(run_after=now)
        .execution_options(synchronize_session=False)
    )
    moved = int(getattr(result, "rowcount", 0) or 0)
    if moved and session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {outbox.NOTIFY_CHANNEL}, '{outbox.NOTIFY_PROVIDER_JOB}'"))
    return moved


def retry_now(
    session: Session, *, actor: Actor, job_id: int, now: dt.datetime | None = None
) -> str:
    """An operator's "Retry now" on a waiting job: due at once instead of after its backoff.
    When its provider's breaker is open, the breaker is let to probe now (with the provider's
    earliest waiting job): pressing the button is the operator saying "try it"."""
    actor.require_change("retry jobs")
    now = now or utcnow()
    job = session.scalars(
        select(OutboxJob)
        .where(OutboxJob.id == job_id, OutboxJob.workspace_id == actor.workspace_id)
        # Its status as committed now, not as this session last saw it.
        .execution_options(populate_existing=True)
    ).first()
    if job is None:
        raise InvalidInput("There is no such job in this workspace; reload the Jobs page.")
    if job.status is not JobStatus.PENDING:
        raise InvalidInput(
            f"Job {job.id} is {job.status.value}, not waiting: there is nothing to retry now."
            + (" Replay it instead." if job.status is JobStatus.DEAD else "")
        )
    job.run_after = now
    message = f"Job {job.id} runs now."
    if job.provider is not None:
        # The workspace's own breaker: an operator may test their account, never another's.
        opened = circuits.open_until(session, provider=job.provider, workspace_id=job.workspace_id)
        if opened is not None and opened > now:
            circuits.probe_now(
                session, provider=job.provider, workspace_id=job.workspace_id, now=now
            )
            # The probe is the account's earliest waiting job, which may not be this one:
            # say what happens, not which job is the test.
            message = (
                f"Job {job.id} is due now. {provider_name(job.provider)}'s breaker is open, so "
                "it is tested now with a waiting job; if that succeeds, every job waiting on "
                "it runs, this one included."
            )
    audit.record(
        session,
        actor=actor,
        action="jobs.retry_now",
        target=f"job:{job.id}",
        details={"kind": job.kind},
    )
    if session.get_bind().dialect.name == "postgresql":
        channel = f", '{outbox.NOTIFY_PROVIDER_JOB}'" if job.provider else ""
        session.execute(text(f"NOTIFY {outbox.NOTIFY_CHANNEL}{channel}"))
    return message
