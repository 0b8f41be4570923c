"""What the console shows of a workspace's connections: the outcome of a connect or test
(``ConnectResult``) and the Integrations page's tiles (``view``: every provider with this
workspace's row, its state, masks and settings).

Covered by tests/connections/test_service.py (the tiles after each operation).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.connections import tiers
from backend.connections.catalog import Catalog, registry
from backend.connections.masks import masked_view
from backend.connections.rows import workspace_of
from backend.integrations.base import ProviderInfo
from models import Integration, IntegrationStatus, Plan


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """The outcome of a connect or test: ``saved`` says whether a row was written."""

    ok: bool
    saved: bool
    message: str
    status: IntegrationStatus | None = None
    latency_ms: int = 0
    account: dict[str, Any] = field(default_factory=dict)
    masked: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """One tile of the Integrations page."""

    slug: str
    name: str
    category: str
    description: str
    logo: str
    # "connected" | "error" | "connect" | "locked" | "coming_soon"
    state: str
    status: str | None
    required_plan: str
    locked_reason: str
    methods: tuple[str, ...]
    payment_provider: bool
    last_checked_at: dt.datetime | None
    last_error: str | None
    connected_at: dt.datetime | None
    masked: dict[str, str]
    settings: dict[str, Any]
    docs_url: str


def view(
    session: Session, workspace_id: int, catalog: Catalog | None = None
) -> list[ConnectionView]:
    """Every provider in the registry with this workspace's row and plan: one tile each."""
    plan = workspace_of(session, workspace_id).plan
    rows = {row.provider: row for row in list_connections(session, workspace_id=workspace_id)}
    out = []
    for prov in (catalog or registry()).providers():
        info = prov.info
        row = rows.get(info.slug)
        needed = tiers.required_plan(info)
        state, locked_reason = _state(plan, info, row)
        out.append(
            ConnectionView(
                slug=info.slug,
                name=info.name,
                category=str(info.category.value),
                description=info.description,
                logo=info.logo,
                state=state,
                status=row.status.value if row is not None else None,
                required_plan=needed.value,
                locked_reason=locked_reason,
                methods=tuple(m.value for m in info.methods),
                payment_provider=info.payment_provider,
                last_checked_at=row.last_checked_at if row is not None else None,
                last_error=row.last_error if row is not None else None,
                connected_at=row.connected_at if row is not None else None,
                masked=masked_view(row, catalog) if row is not None else {},
                settings=dict(row.settings or {}) if row is not None else {},
                docs_url=info.docs_url,
            )
        )
    return out


def _state(plan: Plan, info: ProviderInfo, row: Integration | None) -> tuple[str, str]:
    if not info.available:
        return "coming_soon", ""
    if row is not None and row.status is IntegrationStatus.ACTIVE:
        return "connected", ""
    if row is not None and row.status is IntegrationStatus.ERROR:
        return "error", ""
    if not tiers.plan_allows(plan, info):
        needed = tiers.required_plan(info)
        return "locked", f"{info.name} needs the {needed.value.title()} plan."
    return "connect", ""


def list_connections(session: Session, *, workspace_id: int) -> list[Integration]:
    stmt = (
        select(Integration)
        .where(Integration.workspace_id == workspace_id)
        .order_by(Integration.provider)
    )
    return list(session.scalars(stmt))
