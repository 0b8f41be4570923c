"""A workspace's connections to providers (listing for now; connecting arrives with the hub)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Integration


def list_connections(session: Session, *, workspace_id: int) -> list[Integration]:
    stmt = (
        select(Integration)
        .where(Integration.workspace_id == workspace_id)
        .order_by(Integration.provider)
    )
    return list(session.scalars(stmt))
