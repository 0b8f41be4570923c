"""The Dashboard's figures for one workspace, read in one short transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.services import heartbeat
from models import (
    Alert,
    AlertState,
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


def figures(session: Session, *, workspace_id: int) -> DashboardFigures:
    workspace = session.get_one(Workspace, workspace_id)

    def count(stmt: object) -> int:
        return int(session.scalar(stmt) or 0)  # type: ignore[call-overload]

    jobs_by_status = dict(
        session.execute(
            select(OutboxJob.status, func.count())
            .where(OutboxJob.workspace_id == workspace_id)
            .group_by(OutboxJob.status)
        ).all()
    )
    return DashboardFigures(
        workspace_name=workspace.name,
        plan=workspace.plan,
        connected_integrations=count(
            select(func.count())
            .select_from(Integration)
            .where(
                Integration.workspace_id == workspace_id,
                Integration.status == IntegrationStatus.ACTIVE,
            )
        ),
        open_alerts=count(
            select(func.count())
            .select_from(Alert)
            .where(Alert.workspace_id == workspace_id, Alert.state == AlertState.OPEN)
        ),
        queued_jobs=int(
            jobs_by_status.get(JobStatus.PENDING, 0) + jobs_by_status.get(JobStatus.RUNNING, 0)
        ),
        dead_jobs=int(jobs_by_status.get(JobStatus.DEAD, 0)),
        shows=count(
            select(func.count()).select_from(Show).where(Show.workspace_id == workspace_id)
        ),
        heartbeat_age_seconds=heartbeat.age_seconds(heartbeat.last_tick(session)),
    )
