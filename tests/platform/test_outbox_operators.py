"""Pauses are a workspace's own: one workspace's pause never holds, shows or lets anyone resume
another's jobs; only the platform (the CLI) holds a kind for every workspace, and every
workspace sees that it is held."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.platform import circuits, outbox, outbox_operators, outbox_pauses
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, PermissionDenied
from console.state.jobs import read_snapshot
from models import JobKindPause, OutboxJob, ProviderCircuit, Role, utcnow
from tests import factories

KIND = "test.pausable"
# A kind of the product: the Jobs page lists no test kinds.
LISTED = "stripe.sync_customer"
REMOTE = "test.pausable_remote"


@outbox.job_kind(KIND)
def _pausable(session: Session, job: outbox.JobContext) -> None:
    pass


@outbox.job_kind(REMOTE, provider="pausepay", backoff=(60.0,), max_attempts=5)
def _pausable_remote(session: Session, job: outbox.JobContext) -> None:
    pass


def _two_workspaces(session: Session) -> tuple[Actor, Actor]:
    a = factories.workspace(session, slug="alpha")
    b = factories.workspace(session, slug="beta")
    return Actor(1, a.id, Role.OWNER), Actor(2, b.id, Role.ADMIN)


def _enqueue(session: Session, key: str, workspace_id: int | None, kind: str = KIND) -> None:
    outbox.enqueue(session, kind=kind, payload={}, idempotency_key=key, workspace_id=workspace_id)


def _claimed(session: Session) -> set[str]:
    taken = {job.idempotency_key for job in outbox.claim(session, worker="w")}
    session.rollback()  # leave them pending: each test claims again after a change
    return taken


def test_a_workspace_pause_holds_only_that_workspaces_jobs(session: Session) -> None:
    alpha, beta = _two_workspaces(session)
    _enqueue(session, "alpha", alpha.workspace_id)
    _enqueue(session, "beta", beta.workspace_id)
    _enqueue(session, "platform", None)
    outbox_operators.pause_kind(session, actor=alpha, kind=KIND)
    session.commit()
    assert _claimed(session) == {"beta", "platform"}


def test_another_workspaces_pause_is_neither_seen_nor_resumable(session: Session) -> None:
    alpha, beta = _two_workspaces(session)
    _enqueue(session, "alpha", alpha.workspace_id)
    outbox_operators.pause_kind(session, actor=alpha, kind=KIND)
    session.commit()
    assert outbox_pauses.pauses(session, workspace_id=beta.workspace_id) == (
        outbox_pauses.Pauses(frozenset(), frozenset())
    )
    assert outbox_pauses.pauses(session, workspace_id=alpha.workspace_id).workspace == {KIND}
    # The service refuses, whatever the page shows: beta's resume cannot lift alpha's pause.
    with pytest.raises(InvalidInput, match="not paused in this workspace"):
        outbox_operators.resume_kind(session, actor=beta, kind=KIND)
    session.rollback()
    assert _claimed(session) == set()
    # Pausing in beta too, then resuming there, leaves alpha's pause standing.
    outbox_operators.pause_kind(session, actor=beta, kind=REMOTE)
    outbox_operators.pause_kind(session, actor=beta, kind=KIND)
    outbox_operators.resume_kind(session, actor=beta, kind=KIND)
    session.commit()
    assert _claimed(session) == set()
    assert session.scalars(
        select(JobKindPause.workspace_id).where(JobKindPause.kind == KIND)
    ).all() == [alpha.workspace_id]
    # The Jobs page reads the same: beta's kinds table says nothing of alpha's pause.
    outbox_operators.pause_kind(session, actor=alpha, kind=LISTED)
    session.commit()
    assert _paused_on_page(session, beta)[LISTED] == "no"
    assert _paused_on_page(session, alpha)[LISTED] == "yes"


def _paused_on_page(session: Session, actor: Actor) -> dict[str, str]:
    return {row["kind"]: row["paused"] for row in read_snapshot(session, actor.workspace_id).kinds}


def test_resuming_ones_own_pause_releases_its_jobs(session: Session) -> None:
    alpha, _ = _two_workspaces(session)
    _enqueue(session, "alpha", alpha.workspace_id)
    outbox_operators.pause_kind(session, actor=alpha, kind=KIND)
    outbox_operators.pause_kind(session, actor=alpha, kind=KIND)  # twice: one pause
    session.commit()
    assert _claimed(session) == set()
    outbox_operators.resume_kind(session, actor=alpha, kind=KIND)
    session.commit()
    assert _claimed(session) == {"alpha"}


def test_viewers_cannot_pause_and_unknown_kinds_are_refused(session: Session) -> None:
    alpha, _ = _two_workspaces(session)
    viewer = Actor(3, alpha.workspace_id, Role.VIEWER)
    with pytest.raises(PermissionDenied):
        outbox_operators.pause_kind(session, actor=viewer, kind=KIND)
    with pytest.raises(PermissionDenied):
        outbox_operators.resume_kind(session, actor=viewer, kind=KIND)
    with pytest.raises(InvalidInput, match="no job kind"):
        outbox_operators.pause_kind(session, actor=alpha, kind="nope")


def test_a_platform_pause_holds_every_workspace_and_each_sees_it(session: Session) -> None:
    alpha, beta = _two_workspaces(session)
    _enqueue(session, "alpha", alpha.workspace_id)
    _enqueue(session, "beta", beta.workspace_id)
    _enqueue(session, "platform", None)
    outbox_operators.pause_kind(session, actor=alpha, kind=KIND)
    assert outbox_operators.pause_platform(session, kind=KIND)
    assert not outbox_operators.pause_platform(session, kind=KIND)
    outbox_operators.pause_platform(session, kind=LISTED)
    session.commit()
    assert _claimed(session) == set()
    for actor in (alpha, beta):
        held = outbox_pauses.pauses(session, workspace_id=actor.workspace_id)
        assert held.platform == {KIND, LISTED}
        assert _paused_on_page(session, actor)[LISTED] == "platform"
    listed = outbox_pauses.platform_pauses(session)
    assert [(p.kind, p.paused_by, p.workspaces_pausing) for p in listed] == [
        (LISTED, "cli", 0),
        (KIND, "cli", 1),
    ]
    # No workspace lifts it; beta is told who can.
    with pytest.raises(InvalidInput, match="paused by the platform"):
        outbox_operators.resume_kind(session, actor=beta, kind=KIND)
    session.rollback()
    assert outbox_operators.resume_platform(session, kind=KIND)
    assert not outbox_operators.resume_platform(session, kind=KIND)
    session.commit()
    # alpha's own pause outlives the platform's.
    assert _claimed(session) == {"beta", "platform"}
    assert [p.kind for p in outbox_pauses.platform_pauses(session)] == [LISTED]


def test_a_half_open_breakers_probe_skips_a_paused_workspace(session: Session) -> None:
    """The probe of a provider's breaker takes a waiting job: never one of a workspace that
    paused the kind, which would run it behind that workspace's back."""
    alpha, beta = _two_workspaces(session)
    later = utcnow() + dt.timedelta(minutes=10)
    for key, workspace_id in (("alpha", alpha.workspace_id), ("beta", beta.workspace_id)):
        outbox.enqueue(
            session,
            kind=REMOTE,
            payload={},
            idempotency_key=key,
            workspace_id=workspace_id,
            run_after=later if key == "beta" else None,
        )
    outbox_operators.pause_kind(session, actor=alpha, kind=REMOTE)
    # beta's job waits out a backoff after a failure: only a probe takes it.
    session.execute(update(OutboxJob).where(OutboxJob.idempotency_key == "beta").values(attempts=1))
    # Both accounts' breakers (one per connected account) have served their open time: the next
    # claim sends one probe through each, but alpha paused the kind.
    for workspace_id in (alpha.workspace_id, beta.workspace_id):
        session.add(
            ProviderCircuit(
                key=circuits.key_for("pausepay", workspace_id),
                provider="pausepay",
                workspace_id=workspace_id,
                state="open",
                opened_until=utcnow() - dt.timedelta(seconds=1),
            )
        )
    session.commit()
    assert _claimed(session) == {"beta"}
