"""outbox provider, pauses and circuits

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import models.base


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    
    op.create_table('job_kind_pauses',
    sa.Column('kind', sa.String(length=60), nullable=False),
    sa.Column('paused_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('paused_by', sa.String(length=80), nullable=False),
    sa.PrimaryKeyConstraint('kind', name=op.f('pk_job_kind_pauses'))
    )
    op.create_table('provider_circuits',
    sa.Column('provider', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('window_started_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('window_calls', sa.Integer(), nullable=False),
    sa.Column('window_failures', sa.Integer(), nullable=False),
    sa.Column('opened_until', models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('open_count', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('tokens', sa.Double(), nullable=False),
    sa.Column('tokens_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('provider', name=op.f('pk_provider_circuits'))
    )
    with op.batch_alter_table('outbox_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider', sa.String(length=40), nullable=True))
        batch_op.create_index('ix_outbox_jobs_provider_status', ['provider', 'status'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('outbox_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_jobs_provider_status')
        batch_op.drop_column('provider')

    op.drop_table('provider_circuits')
    op.drop_table('job_kind_pauses')
    
