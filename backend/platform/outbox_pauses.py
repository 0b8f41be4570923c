"""Which jobs a pause holds, and what the pauses are: a kind paused for one workspace (its
owners and admins, from the Jobs page: ``outbox_operators.pause_kind``), or for every workspace
by the platform (``python -m backend.cli outbox pause``). Read by the claim and the Jobs page;
the levers that write pauses are in ``outbox_operators``.

Tested in tests/platform/test_outbox_operators.py and tests/test_cli_outbox.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from models import JobKindPause, OutboxJob


def held() -> Any:
    """True for a job whose kind is paused for its workspace, or by the platform for all.

    A correlated EXISTS, part of the claim's own statement: no query of its own and none per
    job. Each candidate costs one probe of UNIQUE(kind, workspace_id), a table that is empty
    or holds a handful of rows; PostgreSQL plans it as an anti-join.
    """
    return (
        select(JobKindPause.id)
        .where(
            JobKindPause.kind == OutboxJob.kind,
            or_(
                JobKindPause.workspace_id.is_(None),
                JobKindPause.workspace_id == OutboxJob.workspace_id,
            ),
        )
        .correlate(OutboxJob)
        .exists()
    )


@dataclass(frozen=True)
class Pauses:
    """What holds a workspace's jobs: its own pauses, and the platform's (which hold every
    workspace's). Nothing about any other workspace."""

    workspace: frozenset[str]
    platform: frozenset[str]


def pauses(session: Session, *, workspace_id: int) -> Pauses:
    rows = session.execute(
        select(JobKindPause.kind, JobKindPause.workspace_id).where(
            or_(JobKindPause.workspace_id == workspace_id, JobKindPause.workspace_id.is_(None))
        )
    ).all()
    return Pauses(
        workspace=frozenset(kind for kind, owner in rows if owner is not None),
        platform=frozenset(kind for kind, owner in rows if owner is None),
    )


@dataclass(frozen=True)
class PlatformPause:
    kind: str
    paused_at: dt.datetime
    paused_by: str
    # How many workspaces also hold the kind themselves (they stay held after a resume).
    workspaces_pausing: int


def platform_pauses(session: Session) -> list[PlatformPause]:
    """The platform's pauses, for ``python -m backend.cli outbox list``."""
    counts = dict(
        session.execute(
            select(JobKindPause.kind, func.count())
            .where(JobKindPause.workspace_id.is_not(None))
            .group_by(JobKindPause.kind)
        ).all()
    )
    return [
        PlatformPause(row.kind, row.paused_at, row.paused_by, int(counts.get(row.kind, 0)))
        for row in session.scalars(
            select(JobKindPause)
            .where(JobKindPause.workspace_id.is_(None))
            .order_by(JobKindPause.kind)
        )
    ]
