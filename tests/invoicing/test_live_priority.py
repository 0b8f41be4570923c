"""Issue 14, live-show mode: while a show is live, its invoice jobs are claimed before other
work queued earlier (other shows' invoices, other workspaces', local jobs); a show that is not
live gets no priority; going live moves its waiting jobs ahead, ending moves them back."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import backend.jobs  # noqa: F401  (declares the invoice job kinds)
from backend.invoicing import live_priority
from backend.invoicing import service as invoicing
from backend.platform import outbox, turns
from backend.platform.actors import Actor
from models import (
    Integration,
    IntegrationStatus,
    Invoice,
    JobStatus,
    OutboxJob,
    Role,
    Show,
    ShowStatus,
)
from tests import factories
from tests.support.shows import make_show


@outbox.job_kind("test.live_other_local")
def _local(session: Session, job: outbox.JobContext) -> None:
    return None


def _shop(engine: Engine, slug: str) -> Actor:
    """A workspace with Stripe connected (no call is made: jobs are only claimed here)."""
    with Session(engine) as session:
        ws = factories.workspace(session, slug=slug)
        owner = factories.member(session, ws, email=f"owner@{slug}.example", role=Role.OWNER)
        session.add(
            Integration(
                workspace_id=ws.id,
                provider="stripe",
                display_name="Stripe",
                status=IntegrationStatus.ACTIVE,
            )
        )
        session.commit()
        return Actor(owner.id, ws.id, Role.OWNER)


def _generate(engine: Engine, actor: Actor, show_id: int) -> int:
    with Session(engine) as session:
        queued = invoicing.generate_all(session, actor=actor, show_id=show_id)
        session.commit()
    return queued


def _set_status(engine: Engine, show_id: int, status: ShowStatus) -> None:
    with Session(engine) as session:
        session.get_one(Show, show_id).status = status
        session.commit()


def _other_work_then_a_show(engine: Engine, *, live: bool) -> tuple[Actor, int]:
    """50 jobs of other work queued first: 20 invoices of an ended show of the same workspace
    (its Stripe lane), 20 of another workspace's, 10 local jobs; then a show of 5 buyers,
    ``live`` or not, has its invoices generated. (Its owner, the show's id.)"""
    a, b = _shop(engine, "a"), _shop(engine, "b")
    for actor, title in ((a, "Earlier"), (b, "Elsewhere")):
        earlier = make_show(engine, workspace_id=actor.workspace_id, buyers=20, title=title)
        assert _generate(engine, actor, earlier.id) == 20
    with Session(engine) as session:
        for n in range(10):
            outbox.enqueue(
                session, kind="test.live_other_local", payload={}, idempotency_key=f"local:{n}"
            )
        session.commit()
    show = make_show(engine, workspace_id=a.workspace_id, buyers=5, title="Spring Drop")
    if live:
        _set_status(engine, show.id, ShowStatus.LIVE)
    assert _generate(engine, a, show.id) == 5
    return a, show.id


def _claim_shows(engine: Engine, limit: int) -> list[int | None]:
    """The show of each job the next claim takes (None: not an invoice job)."""
    with Session(engine) as session:
        claimed = outbox.claim(session, worker="w", limit=limit)
        session.commit()
        invoice_ids = [job.payload.get("invoice_id") for job in claimed]
        shows = dict(
            session.execute(
                select(Invoice.id, Invoice.show_id).where(
                    Invoice.id.in_([i for i in invoice_ids if i])
                )
            ).all()
        )
    return [shows.get(i) if i else None for i in invoice_ids]


def _pending(engine: Engine) -> int:
    with Session(engine) as session:
        return len(
            session.scalars(select(OutboxJob.id).where(OutboxJob.status == JobStatus.PENDING)).all()
        )


def test_a_live_shows_invoice_jobs_are_claimed_before_other_work_queued_earlier(
    engine: Engine,
) -> None:
    _, show_id = _other_work_then_a_show(engine, live=True)
    assert _pending(engine) == 55
    assert _claim_shows(engine, 5) == [show_id] * 5
    # Then the rest, fair as before: the next claim takes none of the live show's (none left).
    assert show_id not in _claim_shows(engine, 50)


def test_a_show_that_is_not_live_gets_no_priority(engine: Engine) -> None:
    _, show_id = _other_work_then_a_show(engine, live=False)
    first = _claim_shows(engine, 5)
    assert show_id not in first and len(first) == 5
    # Its jobs come in their fair turns: after the same workspace's 20 queued before them.
    taken = first + _claim_shows(engine, 45)
    assert show_id not in taken
    assert _claim_shows(engine, 5) == [show_id] * 5


def test_going_live_moves_the_shows_waiting_jobs_ahead_and_ending_moves_them_back(
    engine: Engine,
) -> None:
    _, show_id = _other_work_then_a_show(engine, live=False)
    with Session(engine) as session:
        show = session.get_one(Show, show_id)
        assert live_priority.go_live(session, show) == 5
        assert live_priority.go_live(session, show) == 0  # ahead already: left alone
        session.commit()
    with Session(engine) as session:
        ahead = session.scalars(
            select(OutboxJob.fair_at).where(OutboxJob.fair_at < turns.AHEAD_BEFORE)
        ).all()
        assert len(ahead) == 5
        show = session.get_one(Show, show_id)
        assert show.status is ShowStatus.LIVE
        assert live_priority.end(session, show) == 5
        session.commit()
    assert show_id not in _claim_shows(engine, 5)
    _set_status(engine, show_id, ShowStatus.LIVE)
    with Session(engine) as session:
        assert live_priority.go_live(session, session.get_one(Show, show_id)) == 5
        session.commit()
    assert _claim_shows(engine, 5) == [show_id] * 5


def test_invoices_queued_while_live_go_after_the_live_ones_already_waiting(
    engine: Engine,
) -> None:
    """Within the priority lane the order still holds: a second Generate during the show
    (new buyers) queues behind the first one's jobs, not in front of them."""
    a, show_id = _other_work_then_a_show(engine, live=True)
    later = make_show(engine, workspace_id=a.workspace_id, buyers=3, title="Later Drop")
    _set_status(engine, later.id, ShowStatus.LIVE)
    assert _generate(engine, a, later.id) == 3
    assert _claim_shows(engine, 5) == [show_id] * 5
    assert _claim_shows(engine, 3) == [later.id] * 3
