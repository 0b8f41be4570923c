"""tenant-scoped job pauses, webhook de-duplication by integration, one workspace per account

- job_kind_pauses: a pause is per (kind, workspace); one without a workspace is the platform's
  (made only with `python -m backend.cli outbox pause`). Each existing pause becomes the pause
  of the workspace whose operator made it (the latest `jobs.pause` in the audit log for that
  kind); one whose maker cannot be found stays held for everyone, as the platform's.
- inbound_events.integration_id (no foreign key: see models/inbox.py): the integration that
  received the event, and the
  de-duplication key becomes (integration_id, external_id), so one Stripe account connected
  to two workspaces gives each its copy. Existing events get the integration of their
  workspace and provider; those of no integration (the platform's Stripe account) stay unique
  by (provider, external_id), in a partial index.
- engagement_events: UNIQUE(workspace_id, source, source_event_id), for the same reason: the
  timeline entry of each workspace's copy of an event.
- integrations.external_account_id, UNIQUE with the provider: the Stripe account (acct_…) a
  connection reaches, so two workspaces connecting one account at once cannot both win. It is
  sealed with the credentials too, which a migration cannot open: rows connected before this
  learn it at their next connection test.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _pauses_table(name: str = "job_kind_pauses") -> None:
    op.create_table(
        name,
        sa.Column("workspace_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=60), nullable=False),
        sa.Column("paused_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("paused_by", sa.String(length=80), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_job_kind_pauses_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_kind_pauses")),
        sa.UniqueConstraint(
            "kind", "workspace_id", name=op.f("uq_job_kind_pauses_kind_workspace_id")
        ),
    )
    op.create_index(
        "uq_job_kind_pauses_platform_kind",
        "job_kind_pauses",
        ["kind"],
        unique=True,
        sqlite_where=sa.text("workspace_id IS NULL"),
        postgresql_where=sa.text("workspace_id IS NULL"),
    )


def upgrade() -> None:
    bind = op.get_bind()
    old = bind.execute(sa.text("SELECT kind, paused_at, paused_by FROM job_kind_pauses")).all()
    op.drop_table("job_kind_pauses")
    _pauses_table()
    for kind, paused_at, paused_by in old:
        workspace_id = bind.execute(
            sa.text(
                "SELECT workspace_id FROM audit_log WHERE action = 'jobs.pause' "
                "AND target = :target ORDER BY at DESC, id DESC LIMIT 1"
            ),
            {"target": f"kind:{kind}"},
        ).scalar()
        bind.execute(
            sa.text(
                "INSERT INTO job_kind_pauses (workspace_id, kind, paused_at, paused_by) "
                "VALUES (:workspace_id, :kind, :paused_at, :paused_by)"
            ),
            {
                "workspace_id": workspace_id,
                "kind": kind,
                "paused_at": paused_at,
                "paused_by": paused_by,
            },
        )

    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("integration_id", sa.Integer(), nullable=True))
        batch_op.drop_constraint("uq_inbound_events_provider_external_id", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_inbound_events_integration_id_external_id"),
            ["integration_id", "external_id"],
        )
    # An integration determines its provider, so (provider, external_id) being unique before
    # keeps (integration_id, external_id) unique after.
    op.execute(
        "UPDATE inbound_events SET integration_id = ("
        "SELECT integrations.id FROM integrations "
        "WHERE integrations.workspace_id = inbound_events.workspace_id "
        "AND integrations.provider = inbound_events.provider) "
        "WHERE workspace_id IS NOT NULL"
    )
    op.create_index(
        "uq_inbound_events_platform_external_id",
        "inbound_events",
        ["provider", "external_id"],
        unique=True,
        sqlite_where=sa.text("integration_id IS NULL"),
        postgresql_where=sa.text("integration_id IS NULL"),
    )

    with op.batch_alter_table("engagement_events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_engagement_events_source_source_event_id", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_engagement_events_workspace_id_source_source_event_id"),
            ["workspace_id", "source", "source_event_id"],
        )

    # Added in place, never rebuilt: on SQLite a rebuild of integrations drops the old table,
    # which fires the ON DELETE of every row pointing at it (events, invoices, logs).
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_account_id", sa.String(length=128), nullable=True))
    op.create_index(
        "uq_integrations_provider_external_account_id",
        "integrations",
        ["provider", "external_account_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_integrations_provider_external_account_id", table_name="integrations")
    # In place on SQLite too (3.35+), not by batch mode's rebuild: see upgrade.
    op.execute("ALTER TABLE integrations DROP COLUMN external_account_id")

    op.execute(
        "DELETE FROM engagement_events WHERE id NOT IN ("
        "SELECT keep FROM (SELECT min(id) AS keep FROM engagement_events "
        "GROUP BY source, source_event_id) AS kept)"
    )
    with op.batch_alter_table("engagement_events", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_engagement_events_workspace_id_source_source_event_id"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_engagement_events_source_source_event_id"),
            ["source", "source_event_id"],
        )

    op.drop_index("uq_inbound_events_platform_external_id", table_name="inbound_events")
    # The old key cannot hold two workspaces' copies of one event: the later copies go.
    op.execute(
        "DELETE FROM inbound_events WHERE id NOT IN ("
        "SELECT keep FROM (SELECT min(id) AS keep FROM inbound_events "
        "GROUP BY provider, external_id) AS kept)"
    )
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_inbound_events_integration_id_external_id"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_inbound_events_provider_external_id"), ["provider", "external_id"]
        )
        batch_op.drop_column("integration_id")

    bind = op.get_bind()
    old = bind.execute(
        sa.text("SELECT kind, min(paused_at), min(paused_by) FROM job_kind_pauses GROUP BY kind")
    ).all()
    op.drop_index("uq_job_kind_pauses_platform_kind", table_name="job_kind_pauses")
    op.drop_table("job_kind_pauses")
    op.create_table(
        "job_kind_pauses",
        sa.Column("kind", sa.String(length=60), nullable=False),
        sa.Column("paused_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("paused_by", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_job_kind_pauses")),
    )
    for kind, paused_at, paused_by in old:
        bind.execute(
            sa.text(
                "INSERT INTO job_kind_pauses (kind, paused_at, paused_by) "
                "VALUES (:kind, :paused_at, :paused_by)"
            ),
            {"kind": kind, "paused_at": paused_at, "paused_by": paused_by},
        )
