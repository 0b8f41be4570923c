"""What is waiting, for the sidecar's metrics: how far webhook processing is behind intake (the
inbox's oldest unhandled event) and the outbox's jobs by kind and status, read together in one
short transaction at scrape time."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from backend.db import session_scope
from backend.platform import inbox, outbox_views


@dataclass(frozen=True, slots=True)
class Backlog:
    inbox_lag_seconds: float
    queue_depth: list[outbox_views.QueueDepth]


def read(engine: Engine) -> Backlog:
    """The backlog of every workspace. SQLAlchemy's errors propagate: the caller decides what
    an unreachable database means for it."""
    with session_scope(engine) as session:
        return Backlog(
            inbox_lag_seconds=inbox.lag_seconds(session),
            queue_depth=outbox_views.queue_depth(session, workspace_id=None),
        )
