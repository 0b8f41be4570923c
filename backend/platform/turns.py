"""Each job's turn in the claim order (``outbox_jobs.fair_at``): fair across workspaces.

A job that calls a provider takes the turn after its account's last pending one
(``FAIR_SPACING`` later), or now when the account has nothing pending. Claims go by turn, so
a workspace's thousand queued invoices are interleaved with everyone else's work instead of
ahead of it: round-robin by place in each account's queue. Only an order: nothing waits for
its turn when nothing else is due (``run_after`` is the wait). Local jobs keep their arrival
time as their turn (see ``outbox.enqueue``).

Tested in tests/platform/test_circuits.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from models import JobStatus, OutboxJob

if TYPE_CHECKING:
    from sqlalchemy import Table

# The distance between two turns of one account's provider jobs.
# Longer than any account's jobs take to run one after the other (Stripe's invoices: a tenth
# of a second; Slack's, at one request a second, about two): a job queued by another workspace
# now then comes before all but the next few of a long queue queued earlier. Any longer changes
# nothing but the figures in the column.
FAIR_SPACING = dt.timedelta(seconds=60)


def _lanes(session: Session) -> dict[str, dt.datetime]:
    """The last turn given to each account in this session's transaction: a run of enqueues
    (Generate all's thousand) asks the database once per account, not once per job."""
    transaction = session.get_transaction()
    held = session.info.get("outbox_lanes")
    if held is None or held[0] is not transaction:
        held = (transaction, {})
        session.info["outbox_lanes"] = held
    lanes: dict[str, dt.datetime] = held[1]
    return lanes


def last_turn(session: Session, key: str, *, besides: Sequence[int] = ()) -> dt.datetime | None:
    """The latest turn among the account's pending jobs other than ``besides`` (None: it has
    none)."""
    latest = select(func.max(OutboxJob.fair_at)).where(
        OutboxJob.circuit_key == key, OutboxJob.status == JobStatus.PENDING
    )
    if besides:
        latest = latest.where(OutboxJob.id.not_in(besides))
    return session.scalar(latest)


def next_turn(session: Session, key: str, now: dt.datetime) -> dt.datetime:
    lanes = _lanes(session)
    last = lanes[key] if key in lanes else last_turn(session, key)
    turn = now if last is None else max(now, last + FAIR_SPACING)
    lanes[key] = turn
    return turn


def requeue_in_turn(session: Session, job_ids: Sequence[int], *, now: dt.datetime) -> None:
    """Give jobs back in the queue (a replay) turns after their accounts' pending ones, in id
    order, as if queued now: a replay of a thousand dead jobs is not ahead of other
    workspaces' work. Local jobs take ``now``."""
    if not job_ids:
        return
    rows = session.execute(
        select(OutboxJob.id, OutboxJob.circuit_key)
        .where(OutboxJob.id.in_(job_ids))
        .order_by(OutboxJob.id)
    ).all()
    lanes: dict[str, dt.datetime | None] = {}
    turns: list[dict[str, Any]] = []
    for job_id, key in rows:
        if key is None:
            turns.append({"job_id": job_id, "turn": now})
            continue
        if key not in lanes:
            lanes[key] = last_turn(session, key, besides=job_ids)
        last = lanes[key]
        turn = now if last is None else max(now, last + FAIR_SPACING)
        lanes[key] = turn
        turns.append({"job_id": job_id, "turn": turn})
    jobs = cast("Table", OutboxJob.__table__)
    # The table, not the entity: one statement run for every row (an executemany).
    session.execute(
        update(jobs).where(jobs.c.id == bindparam("job_id")).values(fair_at=bindparam("turn")),
        turns,
    )


def forget(session: Session, key: str) -> None:
    """The turn last given to ``key`` was not taken (its job already existed)."""
    _lanes(session).pop(key, None)
