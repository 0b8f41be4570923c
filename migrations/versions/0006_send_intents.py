"""checkout_link_sends.intent_key: a Messenger send is recorded before it is made

The job that sends a checkout link by Messenger writes its row (outcome "sending", keyed by
the job) and commits before calling Facebook, whose Send API takes no idempotency key; a rerun
after a crash finds the row and does not send an acknowledged message again. One row per job:
a unique index (NULLs, the sends no job made, are not compared).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('checkout_link_sends', schema=None) as batch_op:
        batch_op.add_column(sa.Column('intent_key', sa.String(length=200), nullable=True))
        batch_op.create_index('ix_checkout_link_sends_intent_key', ['intent_key'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('checkout_link_sends', schema=None) as batch_op:
        batch_op.drop_index('ix_checkout_link_sends_intent_key')
        batch_op.drop_column('intent_key')
