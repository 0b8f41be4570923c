"""The migrations build exactly the models' schema, on both databases, and the constraints the
domain relies on hold."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import models
from models import Integration, IntegrationStatus, OutboxJob, Plan, Workspace
from tests.support.migrate import downgrade, upgrade


def _diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), models.Base.metadata))


def test_migrated_schema_matches_models(engine: Engine) -> None:
    assert _diff(engine) == []
    tables = set(inspect(engine).get_table_names())
    assert set(models.Base.metadata.tables) <= tables


def test_migrations_go_down_and_up_again(engine: Engine) -> None:
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert _diff(engine) == []


def test_one_integration_per_provider_per_workspace(session: Session) -> None:
    workspace = Workspace(name="A", slug="a", plan=Plan.PRO)
    session.add(workspace)
    session.flush()
    for _ in range(2):
        session.add(Integration(workspace_id=workspace.id, provider="stripe", display_name="S"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_outbox_idempotency_key_is_unique(session: Session) -> None:
    session.add_all(
        [OutboxJob(kind="noop", idempotency_key="k1"), OutboxJob(kind="noop", idempotency_key="k1")]
    )
    with pytest.raises(IntegrityError):
        session.flush()


def test_times_come_back_aware_utc_and_json_round_trips(session: Session) -> None:
    moment = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    workspace = Workspace(name="B", slug="b", plan=Plan.FREE, plan_changed_at=moment)
    session.add(workspace)
    session.flush()
    session.add(
        Integration(
            workspace_id=workspace.id,
            provider="slack",
            display_name="Slack",
            status=IntegrationStatus.ACTIVE,
            settings={"channel": "#ops", "n": [1, 2]},
        )
    )
    session.commit()
    session.expire_all()
    loaded = session.scalars(select(Workspace).where(Workspace.slug == "b")).one()
    assert loaded.plan_changed_at == moment
    assert (
        loaded.plan_changed_at is not None and loaded.plan_changed_at.utcoffset() == dt.timedelta(0)
    )
    integration = session.scalars(select(Integration)).one()
    assert integration.settings == {"channel": "#ops", "n": [1, 2]}
    assert integration.status is IntegrationStatus.ACTIVE


def test_naive_datetimes_are_refused(session: Session) -> None:
    session.add(
        Workspace(name="C", slug="c", plan=Plan.FREE, plan_changed_at=dt.datetime(2026, 1, 1))
    )
    with pytest.raises(Exception, match="naive datetime"):
        session.flush()


def test_database_refuses_a_plan_outside_the_vocabulary(session: Session) -> None:
    # Raw SQL, past the ORM: the CHECK constraint itself must hold for any writer.
    insert = text(
        "INSERT INTO workspaces (name, slug, plan, created_at) "
        "VALUES ('D', :slug, :plan, CURRENT_TIMESTAMP)"
    )
    session.execute(insert, {"slug": "d1", "plan": "pro"})
    with pytest.raises(IntegrityError, match=r"(?i)check"):
        session.execute(insert, {"slug": "d2", "plan": "platinum"})
