"""The Dashboard's figures come from the database, for one workspace only."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from backend.health import dashboard
from backend.platform import heartbeat
from models import (
    Alert,
    AlertState,
    Integration,
    IntegrationStatus,
    JobStatus,
    OutboxJob,
    Plan,
    Show,
    ShowStatus,
    utcnow,
)
from tests import factories


def test_figures_count_this_workspace_only(session: Session) -> None:
    mine = factories.workspace(session, slug="mine", plan=Plan.BUSINESS)
    other = factories.workspace(session, slug="other")
    for ws in (mine, other):
        session.add_all(
            [
                Integration(
                    workspace_id=ws.id,
                    provider="stripe",
                    display_name="Stripe",
                    status=IntegrationStatus.ACTIVE,
                ),
                Integration(
                    workspace_id=ws.id,
                    provider="slack",
                    display_name="Slack",
                    status=IntegrationStatus.ERROR,
                ),
                Alert(workspace_id=ws.id, type="x", message="m"),
                Alert(workspace_id=ws.id, type="x", message="m", state=AlertState.RESOLVED),
                Show(workspace_id=ws.id, title="S", status=ShowStatus.ENDED),
            ]
        )
        for n, status in enumerate(
            [
                JobStatus.PENDING,
                JobStatus.RUNNING,
                JobStatus.DONE,
                JobStatus.DEAD,
                JobStatus.PENDING,
            ]
        ):
            session.add(
                OutboxJob(
                    workspace_id=ws.id, kind="noop", status=status, idempotency_key=f"{ws.slug}-{n}"
                )
            )
    heartbeat.beat(session, instance="test:1", now=utcnow() - dt.timedelta(seconds=7))
    session.commit()

    got = dashboard.figures(session, workspace_id=mine.id)
    assert got.workspace_name == "Mine"
    assert got.plan is Plan.BUSINESS
    assert (
        got.connected_integrations,
        got.open_alerts,
        got.queued_jobs,
        got.dead_jobs,
        got.shows,
    ) == (1, 1, 3, 1, 1)
    assert got.heartbeat_age_seconds is not None and 7 <= got.heartbeat_age_seconds <= 60


def test_no_heartbeat_means_unknown_age(session: Session) -> None:
    ws = factories.workspace(session)
    session.commit()
    assert dashboard.figures(session, workspace_id=ws.id).heartbeat_age_seconds is None


def test_heartbeat_keeps_one_row_per_instance_and_reports_the_newest(session: Session) -> None:
    start = utcnow() - dt.timedelta(minutes=5)
    heartbeat.beat(session, instance="a", now=start)
    session.flush()
    heartbeat.beat(session, instance="a", now=start + dt.timedelta(minutes=1))
    heartbeat.beat(session, instance="b", now=start + dt.timedelta(minutes=2))
    session.commit()
    assert heartbeat.last_tick(session) == start + dt.timedelta(minutes=2)
