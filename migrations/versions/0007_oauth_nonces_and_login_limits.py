"""oauth_nonces and login_throttles: one-time OAuth flows bound to a browser; login limits

``oauth_nonces``: each OAuth flow an owner starts, used once by the browser that started it
(digests only). ``login_throttles``: runs of failed logins per client and per (email, client),
known emails or not (digests only).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'oauth_nonces',
        sa.Column('workspace_id', sa.Integer(), nullable=False),
        sa.Column('operator_id', sa.Integer(), nullable=False),
        sa.Column('provider', sa.String(length=40), nullable=False),
        sa.Column('nonce_digest', sa.String(length=64), nullable=False),
        sa.Column('session_digest', sa.String(length=64), nullable=False),
        sa.Column('browser_digest', sa.String(length=64), nullable=True),
        sa.Column('expires_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('used_at', models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['operator_id'], ['operators.id'],
            name=op.f('fk_oauth_nonces_operator_id_operators'), ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['workspace_id'], ['workspaces.id'],
            name=op.f('fk_oauth_nonces_workspace_id_workspaces'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth_nonces')),
        sa.UniqueConstraint('nonce_digest', name=op.f('uq_oauth_nonces_nonce_digest')),
    )
    with op.batch_alter_table('oauth_nonces', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_oauth_nonces_workspace_id'), ['workspace_id'], unique=False
        )
    op.create_table(
        'login_throttles',
        sa.Column('key_digest', sa.String(length=64), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('last_failed_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('id', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_login_throttles')),
        sa.UniqueConstraint('key_digest', name=op.f('uq_login_throttles_key_digest')),
    )


def downgrade() -> None:
    op.drop_table('login_throttles')
    with op.batch_alter_table('oauth_nonces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_nonces_workspace_id'))
    op.drop_table('oauth_nonces')
