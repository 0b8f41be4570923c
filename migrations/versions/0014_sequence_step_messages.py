"""sequences: each step's e-mails, and what an enrolment's e-mails say

- email_messages.sequence_step_id: the sequence step a message was sent for (nullable,
  indexed), so the Sequences page counts sent / opened / clicked per step with one GROUP BY
  instead of parsing dedupe keys. No foreign key, like send_job_id: SQLite adds one to an
  existing table only inline and unnamed (which it then reflects unlike the models), and
  naming it would take a rebuild of email_messages; a step is only ever deleted with its
  sequence, and an id of a deleted step joins nothing.
- sequence_enrolments.context: the template variables the trigger knew (a proposal's title and
  link, a contract's amount and payment link), used for each step's e-mail.

Revision ID: 0014
Revises: 0013
Create Date: 2027-02-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # Plain ADD COLUMN on both databases, never a batch rebuild of email_messages: its events
    # reference it ON DELETE CASCADE, and a rebuild drops the table they point at.
    op.add_column("email_messages", sa.Column("sequence_step_id", sa.Integer(), nullable=True))
    op.create_index(
        op.f("ix_email_messages_sequence_step_id"), "email_messages", ["sequence_step_id"]
    )
    op.add_column(
        "sequence_enrolments",
        sa.Column("context", JSON, server_default="{}", nullable=False),
    )


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+ too): a batch rebuild of email_messages would
    # cascade-delete its events.
    op.drop_column("sequence_enrolments", "context")
    op.drop_index(op.f("ix_email_messages_sequence_step_id"), table_name="email_messages")
    op.drop_column("email_messages", "sequence_step_id")
