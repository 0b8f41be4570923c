"""alerts become incidents, with their history

- alerts: grouped by (workspace, type (the rule), entity_key) with first/last seen and a count;
  states snoozed and ignored; regressed; clear_since (auto-resolve); what was notified. At most
  one unresolved incident per (workspace, rule, entity), as a partial unique index (one for the
  workspace's, one for the platform's: NULLs are distinct in a unique index).
- alert_events: each incident's history (raised, recurred, acknowledged, notified …).

The state's CHECK constraint gains two values. On SQLite a CHECK cannot be altered, and batch
mode does not carry the table's other CHECKs over reliably, so the table is rebuilt by hand:
rows read, table dropped and created, rows written back (nothing points at alerts yet). Open
alerts that duplicate one another (the old ``add`` did not group) are folded into the oldest.

Revision ID: 0010
Revises: 0009
Create Date: 2027-01-10 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_COLUMNS = (
    "id, workspace_id, type, priority, message, entity_type, entity_id, state, created_at, "
    "acknowledged_at, resolved_at"
)
PRIORITIES = ("low", "normal", "high", "critical")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _alerts_table(states: tuple[str, ...], *, incidents: bool) -> None:
    columns: list[sa.Column[object]] = [
        sa.Column("workspace_id", sa.Integer(), nullable=True),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("priority", _enum("alert_priority", *PRIORITIES), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("entity_type", sa.String(length=40), nullable=True),
        sa.Column("entity_id", sa.String(length=64), nullable=True),
        sa.Column("state", _enum("alert_state", *states), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", models.base.UTCDateTime(timezone=True), nullable=True),
    ]
    if incidents:
        when = models.base.UTCDateTime(timezone=True)
        columns += [
            sa.Column("entity_key", sa.String(length=120), nullable=False),
            sa.Column("first_seen_at", when, nullable=False),
            sa.Column("last_seen_at", when, nullable=False),
            sa.Column("count", sa.Integer(), nullable=False),
            sa.Column("snoozed_until", when, nullable=True),
            sa.Column("ignored_for_ever", sa.Boolean(), nullable=False),
            sa.Column("regressed", sa.Boolean(), nullable=False),
            sa.Column("clear_since", when, nullable=True),
            sa.Column("notified_count", sa.Integer(), nullable=False),
            sa.Column("last_notified_at", when, nullable=True),
            sa.Column(
                "notified_priority", _enum("alert_notified_priority", *PRIORITIES), nullable=True
            ),
        ]
    op.create_table(
        "alerts",
        *columns,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_alerts_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index("ix_alerts_workspace_id_state", "alerts", ["workspace_id", "state"])
    if incidents:
        unresolved = sa.text("state != 'resolved'")
        platform = sa.text("workspace_id IS NULL AND state != 'resolved'")
        op.create_index(
            "uq_alerts_open_incident",
            "alerts",
            ["workspace_id", "type", "entity_key"],
            unique=True,
            sqlite_where=unresolved,
            postgresql_where=unresolved,
        )
        op.create_index(
            "uq_alerts_open_platform_incident",
            "alerts",
            ["type", "entity_key"],
            unique=True,
            sqlite_where=platform,
            postgresql_where=platform,
        )


def _reset_sequence() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('alerts', 'id'), "
            "coalesce((SELECT max(id) FROM alerts), 0) + 1, false)"
        )


def upgrade() -> None:
    bind = op.get_bind()
    rows = [dict(r._mapping) for r in bind.execute(sa.text(f"SELECT {OLD_COLUMNS} FROM alerts"))]
    op.drop_index("ix_alerts_workspace_id_state", table_name="alerts")
    op.drop_table("alerts")
    _alerts_table(("open", "acknowledged", "snoozed", "ignored", "resolved"), incidents=True)
    seen: set[tuple[object, ...]] = set()
    # Values go back as they came out (SQLite hands times back as text, PostgreSQL as times).
    for row in sorted(rows, key=lambda r: r["id"]):
        key = f"{row['entity_type']}:{row['entity_id']}" if row["entity_type"] else ""
        group = (row["workspace_id"], row["type"], key)
        if row["state"] != "resolved":
            if group in seen:
                continue  # a duplicate of an open incident kept above
            seen.add(group)
        bind.execute(
            sa.text(
                f"INSERT INTO alerts ({OLD_COLUMNS}, entity_key, first_seen_at, last_seen_at, "
                "count, ignored_for_ever, regressed, notified_count) VALUES (:id, "
                ":workspace_id, :type, :priority, :message, :entity_type, :entity_id, :state, "
                ":created_at, :acknowledged_at, :resolved_at, :entity_key, :created_at, "
                ":created_at, 1, false, false, 0)"
            ),
            {**row, "entity_key": key},
        )
    _reset_sequence()

    op.create_table(
        "alert_events",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=True),
        sa.Column("at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("what", sa.String(length=40), nullable=False),
        sa.Column("who", sa.String(length=80), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_alert_events_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_alert_events_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
    )
    op.create_index("ix_alert_events_alert_id_at", "alert_events", ["alert_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_alert_events_alert_id_at", table_name="alert_events")
    op.drop_table("alert_events")
    bind = op.get_bind()
    rows = [dict(r._mapping) for r in bind.execute(sa.text(f"SELECT {OLD_COLUMNS} FROM alerts"))]
    op.drop_index("uq_alerts_open_platform_incident", table_name="alerts")
    op.drop_index("uq_alerts_open_incident", table_name="alerts")
    op.drop_index("ix_alerts_workspace_id_state", table_name="alerts")
    op.drop_table("alerts")
    _alerts_table(("open", "acknowledged", "resolved"), incidents=False)
    # The old states cannot say snoozed or ignored: both were "seen, not resolved".
    for row in rows:
        if row["state"] in ("snoozed", "ignored"):
            row["state"] = "acknowledged"
        bind.execute(
            sa.text(
                f"INSERT INTO alerts ({OLD_COLUMNS}) VALUES (:id, :workspace_id, :type, "
                ":priority, :message, :entity_type, :entity_id, :state, :created_at, "
                ":acknowledged_at, :resolved_at)"
            ),
            row,
        )
    _reset_sequence()
