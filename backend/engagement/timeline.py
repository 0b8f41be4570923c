"""The engagement timeline: what people did, newest first, each event with the person's name
(a buyer's handle, a lead's or client's name) rather than a row id."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Buyer, Client, EngagementEvent, Lead

# What the timeline says when the person's row is gone (deleted) or of an unknown kind.
_UNKNOWN = {"buyer": "A buyer no longer on file", "lead": "A lead no longer on file"}


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    occurred_at: dt.datetime
    source: str
    name: str
    who: str
    subject_type: str


def recent(session: Session, *, workspace_id: int, limit: int = 100) -> list[EngagementEvent]:
    stmt = (
        select(EngagementEvent)
        .where(EngagementEvent.workspace_id == workspace_id)
        .order_by(EngagementEvent.occurred_at.desc(), EngagementEvent.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def timeline(session: Session, *, workspace_id: int, limit: int = 100) -> list[TimelineEntry]:
    """The latest events with who they were about, in words. One query per kind of person,
    each scoped to the workspace: an id that points into another workspace names nobody."""
    events = recent(session, workspace_id=workspace_id, limit=limit)
    names = _names(session, workspace_id=workspace_id, events=events)
    return [
        TimelineEntry(
            occurred_at=e.occurred_at,
            source=e.source,
            name=e.name,
            who=names.get((e.subject_type, e.subject_id))
            or _UNKNOWN.get(e.subject_type, f"A {e.subject_type} no longer on file"),
            subject_type=e.subject_type,
        )
        for e in events
    ]


def _names(
    session: Session, *, workspace_id: int, events: Iterable[EngagementEvent]
) -> dict[tuple[str, int], str]:
    wanted: dict[str, set[int]] = {}
    for e in events:
        wanted.setdefault(e.subject_type, set()).add(e.subject_id)
    found: dict[tuple[str, int], str] = {}
    tables: dict[str, Any] = {"buyer": Buyer, "lead": Lead, "client": Client}
    for kind, ids in wanted.items():
        model = tables.get(kind)
        if model is None:
            continue
        label = model.handle if model is Buyer else model.name
        rows = session.execute(
            select(model.id, label).where(model.workspace_id == workspace_id, model.id.in_(ids))
        )
        found.update({(kind, id_): text for id_, text in rows if text})
    return found
