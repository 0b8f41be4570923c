"""inbound_events by workspace and time, for the Health page's webhook intake chart

- ix_inbound_events_workspace_id_received_at: the workspace's events of a window as one index
  range (backend/health/intake.py says why an index and not a rollup).

Revision ID: 0013
Revises: 0012
Create Date: 2027-01-27 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Not in a batch: SQLite adds an index without rebuilding the table.
    op.create_index(
        "ix_inbound_events_workspace_id_received_at",
        "inbound_events",
        ["workspace_id", "received_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_events_workspace_id_received_at", table_name="inbound_events")
