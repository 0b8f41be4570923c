"""every provider call logged, and rolled up per minute

- integration_logs: ``status`` becomes ``outcome`` (ok | rejected | rate_limited | unavailable
  | timeout; the old "error" becomes "unavailable", which it mostly was); ``http_status`` and
  ``job_id`` are added. Rows written for handled webhooks (operation "webhook:…") are not
  provider calls and are deleted: webhook intake is read from the inbox.
- integration_call_minutes and integration_call_hours: counts by outcome and a latency histogram
  per (workspace, provider, operation, minute or hour), what the Health page, the alert rules and
  /metrics read (hours for a day or a week).
- provider_call_latest: each workspace's last success and last error per provider.
- alerts.posted_count: the platform's incidents' notices the sidecar has posted itself.

Revision ID: 0011
Revises: 0010
Create Date: 2027-01-20 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUCKETS = ("10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000", "inf")
OUTCOMES = ("ok", "rejected", "rate_limited", "unavailable", "timeout")


def _create_rollup(table: str, column: str) -> None:
    op.create_table(
        table,
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("operation", sa.String(length=80), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in OUTCOMES),
        sa.Column("latency_ms_sum", sa.Integer(), nullable=False),
        *(sa.Column(f"le_{b}", sa.Integer(), nullable=False) for b in BUCKETS),
        sa.Column(column, models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f(f"fk_{table}_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    )
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.create_index(
            f"uq_{table}_key", ["workspace_id", "provider", "operation", column], unique=True
        )
        batch_op.create_index(f"ix_{table}_{column}", [column], unique=False)
        batch_op.create_index(
            f"ix_{table}_workspace_id_{column}", ["workspace_id", column], unique=False
        )


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite too: no table rebuild, which would lose the partial indexes).
    op.add_column(
        "alerts", sa.Column("posted_count", sa.Integer(), nullable=False, server_default="0")
    )
    op.execute("DELETE FROM integration_logs WHERE operation LIKE 'webhook:%'")
    op.execute("UPDATE integration_logs SET status = 'unavailable' WHERE status != 'ok'")
    with op.batch_alter_table("integration_logs", schema=None) as batch_op:
        batch_op.alter_column(
            "status",
            new_column_name="outcome",
            existing_type=sa.String(length=16),
            existing_nullable=False,
        )
        batch_op.add_column(sa.Column("http_status", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("job_id", sa.Integer(), nullable=True))

    for table, column in (("integration_call_minutes", "minute"), ("integration_call_hours", "hour")):
        _create_rollup(table, column)

    op.create_table(
        "provider_call_latest",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("last_ok_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_operation", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_provider_call_latest_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "provider", name=op.f("pk_provider_call_latest")),
    )


def downgrade() -> None:
    # Plain DROP COLUMN: a batch rebuild of alerts would cascade-delete alert_events.
    op.drop_column("alerts", "posted_count")
    op.drop_table("provider_call_latest")
    for table, column in (("integration_call_hours", "hour"), ("integration_call_minutes", "minute")):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_workspace_id_{column}")
            batch_op.drop_index(f"ix_{table}_{column}")
            batch_op.drop_index(f"uq_{table}_key")
        op.drop_table(table)
    with op.batch_alter_table("integration_logs", schema=None) as batch_op:
        batch_op.drop_column("job_id")
        batch_op.drop_column("http_status")
        batch_op.alter_column(
            "outcome",
            new_column_name="status",
            existing_type=sa.String(length=16),
            existing_nullable=False,
        )
