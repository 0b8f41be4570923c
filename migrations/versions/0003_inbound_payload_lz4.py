"""inbound event payloads compressed with lz4 on PostgreSQL

A Stripe event is 3-4 KB of JSON, over PostgreSQL's 2 KB TOAST threshold, so every stored
webhook is compressed; with the default pglz that was the largest cost of storing one
(~240 µs of server CPU an event, ~100 µs with lz4, measured by bench/bench_ingest.py). Only
new rows are affected. Servers built without lz4 keep pglz. SQLite: nothing to do.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _set_compression(method: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        DO $$
        BEGIN
            ALTER TABLE inbound_events ALTER COLUMN payload SET COMPRESSION {method};
        EXCEPTION WHEN feature_not_supported THEN
            RAISE NOTICE 'compression method {method} not supported: keeping the default';
        END
        $$
        """
    )


def upgrade() -> None:
    _set_compression("lz4")


def downgrade() -> None:
    _set_compression("pglz")
