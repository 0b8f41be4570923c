"""Shows as the Shows page lists them: claims, buyers, value and invoices, newest first."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from backend.invoicing import panel as invoice_panel
from models import Claim, Invoice, InvoiceStatus, Show, ShowItem, ShowStatus


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
    # Buyers' current invoices (the latest attempt of each) by status: draft, sent, paid, ...
    invoices: dict[str, int] = field(default_factory=dict)


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
    found = session.execute(stmt).all()
    invoices = invoice_counts(session, show_ids=[row[0].id for row in found])
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
            invoices=invoices.get(show.id, {}),
        )
        for show, n, b, t, u in found
    ]


def invoice_counts(session: Session, *, show_ids: list[int]) -> dict[int, dict[str, int]]:
    """Each show's current invoices by status, for all the shows in one grouped query."""
    if not show_ids:
        return {}
    latest = invoice_panel.latest_attempts(*show_ids)
    counts: dict[int, dict[str, int]] = {}
    for show_id, status, count in session.execute(
        select(Invoice.show_id, Invoice.status, func.count())
        .join(latest, invoice_panel.is_current(Invoice, latest))
        .group_by(Invoice.show_id, Invoice.status)
    ):
        if show_id is not None:
            counts.setdefault(show_id, {})[InvoiceStatus(status).value] = int(count)
    return counts
