"""circuits per connected account; fair claim turns

Breakers and rate-limit buckets were one per provider, shared by every workspace: keyed now by
the account a call goes out as (``circuits.key_for``: the workspace and the provider, or the
platform's own account). The old shared rows are dropped (they held only a few minutes' state:
a breaker's window and a bucket's tokens; the next call creates the account's row).
``outbox_jobs.circuit_key`` names the account each job calls as (backfilled from its workspace
and provider), ``outbox_jobs.fair_at`` its turn in the claim order (backfilled with its
run_after: the order the claim used so far).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import models.base


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _circuits_table(key_column: str) -> None:
    columns = [
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
    ]
    if key_column == 'key':
        op.create_table(
            'provider_circuits',
            sa.Column('key', sa.String(length=80), nullable=False),
            *columns,
            sa.Column('workspace_id', sa.Integer(), nullable=True),
            sa.ForeignKeyConstraint(
                ['workspace_id'], ['workspaces.id'],
                name=op.f('fk_provider_circuits_workspace_id_workspaces'), ondelete='CASCADE',
            ),
            sa.PrimaryKeyConstraint('key', name=op.f('pk_provider_circuits')),
        )
        op.create_index(
            op.f('ix_provider_circuits_workspace_id'), 'provider_circuits', ['workspace_id'],
            unique=False,
        )
    else:
        op.create_table(
            'provider_circuits',
            *columns,
            sa.PrimaryKeyConstraint('provider', name=op.f('pk_provider_circuits')),
        )


def upgrade() -> None:
    op.drop_table('provider_circuits')
    _circuits_table('key')
    with op.batch_alter_table('outbox_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('circuit_key', sa.String(length=80), nullable=True))
        batch_op.add_column(
            sa.Column('fair_at', models.base.UTCDateTime(timezone=True), nullable=True)
        )
    owner = (
        "CASE WHEN workspace_id IS NULL THEN 'platform' "
        "ELSE 'ws' || CAST(workspace_id AS VARCHAR) END"
    )
    op.execute(
        f"UPDATE outbox_jobs SET circuit_key = provider || ':' || {owner} "  # noqa: S608
        "WHERE provider IS NOT NULL"
    )
    op.execute("UPDATE outbox_jobs SET fair_at = run_after")
    with op.batch_alter_table('outbox_jobs', schema=None) as batch_op:
        batch_op.alter_column(
            'fair_at', existing_type=models.base.UTCDateTime(timezone=True), nullable=False
        )
        batch_op.create_index(
            'ix_outbox_jobs_status_fair_at', ['status', 'fair_at', 'id'], unique=False
        )
        batch_op.create_index(
            'ix_outbox_jobs_circuit_key_status_fair_at',
            ['circuit_key', 'status', 'fair_at'],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('outbox_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_jobs_circuit_key_status_fair_at')
        batch_op.drop_index('ix_outbox_jobs_status_fair_at')
        batch_op.drop_column('fair_at')
        batch_op.drop_column('circuit_key')
    op.drop_index(op.f('ix_provider_circuits_workspace_id'), table_name='provider_circuits')
    op.drop_table('provider_circuits')
    _circuits_table('provider')
