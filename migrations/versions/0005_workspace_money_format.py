"""workspaces.locale and workspaces.currency: how prices are typed and shown

Prices typed in the console and read from a claims CSV are parsed in the workspace's locale
(en_US "1,234.56", de_DE "1.234,56"); new shows take the workspace's currency. Existing
workspaces keep what they had: en_US and usd.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('locale', sa.String(length=16), server_default='en_US', nullable=False)
        )
        batch_op.add_column(
            sa.Column('currency', sa.String(length=3), server_default='usd', nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.drop_column('currency')
        batch_op.drop_column('locale')
