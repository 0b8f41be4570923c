"""Shows as the Shows page lists them: claims, buyers and value, newest first."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from models import Claim, Show, ShowItem, ShowStatus


@dataclass(frozen=True, slots=True)
class ShowSummary:
    id: int
    title: str
    status: ShowStatus
    started_at: dt.datetime
    claims: int
    buyers: int
    total_cents: int
    unpriced_items: int
    currency: str


def list_shows(
    session: Session, *, workspace_id: int, search: str = "", limit: int = 100
) -> list[ShowSummary]:
    claims = (
        select(
            Claim.show_id,
            func.count(Claim.id).label("claims"),
            func.count(func.distinct(Claim.platform_user_id)).label("buyers"),
            func.coalesce(
                func.sum(Claim.quantity * func.coalesce(ShowItem.price_cents, 0)), 0
            ).label("total"),
            func.count(func.distinct(case((ShowItem.price_cents.is_(None), ShowItem.id)))).label(
                "unpriced"
            ),
        )
        .join(ShowItem, ShowItem.id == Claim.item_id)
        .where(Claim.workspace_id == workspace_id)
        .group_by(Claim.show_id)
        .subquery()
    )
    stmt = (
        select(Show, claims.c.claims, claims.c.buyers, claims.c.total, claims.c.unpriced)
        .outerjoin(claims, claims.c.show_id == Show.id)
        .where(Show.workspace_id == workspace_id)
        .order_by(Show.started_at.desc(), Show.id.desc())
        .limit(limit)
    )
    if search.strip():
        stmt = stmt.where(Show.title.ilike(f"%{search.strip()}%"))
    return [
        ShowSummary(
            id=show.id,
            title=show.title,
            status=show.status,
            started_at=show.started_at,
            claims=int(n or 0),
            buyers=int(b or 0),
            total_cents=int(t or 0),
            unpriced_items=int(u or 0),
            currency=show.currency,
        )
        for show, n, b, t, u in session.execute(stmt).all()
    ]
