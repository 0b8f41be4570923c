"""Live-show priority: while a show is live, the jobs of its invoices (made and voided in
Stripe, their links sent by Messenger) are claimed before all other work. Buyers pay while they
are still watching; an invoice that arrives after the show is one they often never open.

They take turns ahead of everything else (``turns.AHEAD``): queued so while the show is live
(``goes_first`` at enqueue), moved ahead when it goes live and back when it ends (``go_live``,
``end``). Only the claim's order changes: its query and index stay those of the drain's hot
path, and among themselves such jobs keep their fair turns (two workspaces live at once share).

Tested in tests/invoicing/test_live_priority.py.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.platform import turns
from models import Invoice, JobStatus, OutboxJob, Show, ShowStatus, utcnow


def is_live(show: Show) -> bool:
    """Jobs about the show's invoices go before other work while this holds."""
    return show.status is ShowStatus.LIVE


def goes_first(session: Session, show_id: int | None) -> bool:
    """``is_live`` for the show of an invoice (usually in the session already: no query)."""
    if show_id is None:
        return False
    show = session.get(Show, show_id)
    return show is not None and is_live(show)


def unfinished_jobs(session: Session, show: Show) -> list[int]:
    """The show's invoice jobs not finished: those whose payload names one of its invoices,
    whatever their kind, waiting or running (a running one that fails waits again in its
    turn). Read once when a show goes live or ends, never on the drain's path: the pending
    and running jobs are looked through."""
    invoices = select(Invoice.id).where(Invoice.show_id == show.id)
    return list(
        session.scalars(
            select(OutboxJob.id)
            .where(
                OutboxJob.status.in_([JobStatus.PENDING, JobStatus.RUNNING]),
                OutboxJob.workspace_id == show.workspace_id,
                OutboxJob.payload["invoice_id"].as_integer().in_(invoices),
            )
            .order_by(OutboxJob.id)
        )
    )


def go_live(session: Session, show: Show) -> int:
    """The show is live: its invoice jobs already queued go ahead of other work (in the order
    they were in), and those queued from now on too. How many were moved. The caller
    commits."""
    show.status = ShowStatus.LIVE
    show.ended_at = None
    return turns.move(session, unfinished_jobs(session, show), ahead=True)


def end(session: Session, show: Show) -> int:
    """The show ended: its invoice jobs not finished take their turns among the rest again.
    How many were moved back. The caller commits."""
    show.status = ShowStatus.ENDED
    show.ended_at = show.ended_at or utcnow()
    return turns.move(session, unfinished_jobs(session, show), ahead=False)
