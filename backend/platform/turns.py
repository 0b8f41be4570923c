"""Each job's turn in the claim order (``outbox_jobs.fair_at``): fair across workspaces.

A job that calls a provider takes the turn after its account's last pending one
(``FAIR_SPACING`` later), or now when the account has nothing pending. Claims go by turn, so
a workspace's thousand queued invoices are interleaved with everyone else's work instead of
ahead of it: round-robin by place in each account's queue. Only an order: nothing waits for
its turn when nothing else is due (``run_after`` is the wait). Local jobs keep their arrival
time as their turn (see ``outbox.enqueue``).

Some work goes before all the rest: a live show's invoice jobs (``backend/invoicing/
live_priority.py``). Their turns are moved back by ``AHEAD``, into a past no ordinary turn
reaches, so the claim takes them first with no change to its query or its index (a column of
its own would have meant a migration and a wider index on the drain's hot path). Among
themselves they keep their turns: two workspaces live at once still share fairly. Moving a job
ahead and back again is adding and removing ``AHEAD``: it keeps its place in its lane.

Tested in tests/platform/test_circuits.py and tests/invoicing/test_live_priority.py.
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
# How far back a job that goes first has its turn moved: about a thousand years. Every turn
# before ``AHEAD_BEFORE`` is one of those; no clock puts an ordinary turn there.
AHEAD = dt.timedelta(days=365_000)
AHEAD_BEFORE = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)

# A lane: an account's provider jobs, those that go first apart from the others.
Lane = tuple[str, bool]
# Ids per statement when jobs are moved (well under either database's limit on parameters).
_CHUNK = 1000


def _lanes(session: Session) -> dict[Lane, dt.datetime]:
    """The last turn given to each account in this session's transaction: a run of enqueues
    (Generate all's thousand) asks the database once per account, not once per job."""
    transaction = session.get_transaction()
    held = session.info.get("outbox_lanes")
    if held is None or held[0] is not transaction:
        held = (transaction, {})
        session.info["outbox_lanes"] = held
    lanes: dict[Lane, dt.datetime] = held[1]
    return lanes


def last_turn(
    session: Session, key: str, *, besides: Sequence[int] = (), ahead: bool = False
) -> dt.datetime | None:
    """The latest turn among the account's pending jobs other than ``besides`` (None: it has
    none), in the lane of the jobs that go first when ``ahead`` (as if not moved back), else
    of the others. Either is the end of a range of the (circuit_key, status, fair_at) index."""
    latest = select(func.max(OutboxJob.fair_at)).where(
        OutboxJob.circuit_key == key,
        OutboxJob.status == JobStatus.PENDING,
        OutboxJob.fair_at < AHEAD_BEFORE if ahead else OutboxJob.fair_at >= AHEAD_BEFORE,
    )
    if besides:
        latest = latest.where(OutboxJob.id.not_in(besides))
    last = session.scalar(latest)
    return last + AHEAD if ahead and last is not None else last


def next_turn(session: Session, key: str, now: dt.datetime, *, ahead: bool = False) -> dt.datetime:
    """The turn of the account's next provider job; moved back by ``AHEAD`` when it goes first
    (then after the account's other jobs that go first)."""
    lanes = _lanes(session)
    lane = (key, ahead)
    last = lanes[lane] if lane in lanes else last_turn(session, key, ahead=ahead)
    turn = now if last is None else max(now, last + FAIR_SPACING)
    lanes[lane] = turn
    return turn - AHEAD if ahead else turn


def turn_for(
    session: Session, key: str | None, now: dt.datetime, *, ahead: bool = False
) -> dt.datetime:
    """A new job's turn: ``next_turn`` in its account's lane, or for a local job (``key``
    None) its arrival: local jobs run thousands a second, in batches, and a turn would cost
    the webhooks' hot path a query for a wait of milliseconds."""
    if key:
        return next_turn(session, key, now, ahead=ahead)
    return now - AHEAD if ahead else now


def move(session: Session, job_ids: Sequence[int], *, ahead: bool) -> int:
    """Move jobs ahead of all other work (``ahead``), or back among it: each keeps its place
    in its lane (a live show's invoices queued before it went live go first in the order they
    were queued). Jobs already where they are asked to be are left alone. How many moved.
    A running job may be moved too: its turn counts again if it fails and waits to retry."""
    shift = -AHEAD if ahead else AHEAD
    jobs = cast("Table", OutboxJob.__table__)
    moved = 0
    for start in range(0, len(job_ids), _CHUNK):
        rows = session.execute(
            select(OutboxJob.id, OutboxJob.fair_at).where(
                OutboxJob.id.in_(job_ids[start : start + _CHUNK]),
                OutboxJob.fair_at >= AHEAD_BEFORE if ahead else OutboxJob.fair_at < AHEAD_BEFORE,
            )
        ).all()
        if not rows:
            continue
        # The table, not the entity: one statement run for every row (an executemany).
        session.execute(
            update(jobs).where(jobs.c.id == bindparam("job_id")).values(fair_at=bindparam("turn")),
            [{"job_id": job_id, "turn": turn + shift} for job_id, turn in rows],
        )
        moved += len(rows)
    # The lanes this transaction remembers may have just changed ends: ask the database again.
    _lanes(session).clear()
    return moved


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


def forget(session: Session, key: str, *, ahead: bool = False) -> None:
    """The turn last given to ``key`` was not taken (its job already existed)."""
    _lanes(session).pop((key, ahead), None)
