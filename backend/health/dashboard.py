"""The Dashboard's figures for one workspace, read in one short transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, ScalarSelect, func, select
from sqlalchemy.orm import Session

from backend.platform import heartbeat
from models import (
    Alert,
    AlertState,
    Base,
    Integration,
    IntegrationStatus,
    JobStatus,
    OutboxJob,
    Plan,
    Show,
    Workspace,
)


@dataclass(frozen=True, slots=True)
class DashboardFigures:
    workspace_name: str
    plan: Plan
    connected_integrations: int
    open_alerts: int
    queued_jobs: int
    dead_jobs: int
    shows: int
    heartbeat_age_seconds: int | None


def _count(model: type[Base], *where: ColumnElement[bool]) -> ScalarSelect[int]:
    return select(func.count()).select_from(model).where(*where).scalar_subquery()


def figures(session: Session, *, workspace_id: int) -> DashboardFigures:
    """Every count in one query (a scalar subquery each), then the scheduler's heartbeat."""
    name, plan, connected, alerts, queued, dead, shows = session.execute(
        select(
            Workspace.name,
            Workspace.plan,
            _count(
                Integration,
                Integration.workspace_id == workspace_id,
                Integration.status == IntegrationStatus.ACTIVE,
            ),
            _count(Alert, Alert.workspace_id == workspace_id, Alert.state == AlertState.OPEN),
            _count(
                OutboxJob,
                OutboxJob.workspace_id == workspace_id,
                OutboxJob.status.in_((JobStatus.PENDING, JobStatus.RUNNING)),
            ),
            _count(
                OutboxJob,
                OutboxJob.workspace_id == workspace_id,
                OutboxJob.status == JobStatus.DEAD,
            ),
            _count(Show, Show.workspace_id == workspace_id),
        ).where(Workspace.id == workspace_id)
    ).one()
    return DashboardFigures(
        workspace_name=name,
        plan=plan,
        connected_integrations=connected,
        open_alerts=alerts,
        queued_jobs=queued,
        dead_jobs=dead,
        shows=shows,
        heartbeat_age_seconds=heartbeat.age_seconds(heartbeat.last_tick(session)),
    )
