"""The engagement timeline: what people did, newest first."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import EngagementEvent


def recent(session: Session, *, workspace_id: int, limit: int = 100) -> list[EngagementEvent]:
    stmt = (
        select(EngagementEvent)
        .where(EngagementEvent.workspace_id == workspace_id)
        .order_by(EngagementEvent.occurred_at.desc(), EngagementEvent.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))
