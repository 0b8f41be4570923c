"""What a cell of the isolation matrix changed (tests/security/test_isolation_matrix.py): a
digest of every table's rows per owning workspace, and the way back to the world as built
after a cell that changed anything."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.pool import NullPool

from models import Base, Membership
from tests.support.matrix_world import World

Fingerprint = dict[tuple[str, str], str]


def _owner(table: str, values: Any, world: World, memberships: dict[int, set[str]]) -> str:
    """The tenant ("A", "A2", "B", "F") a row belongs to: its workspace's (an operator's: that
    of the workspaces it belongs to, A2 counting as A; "shared" if several); "platform" for a
    row of no workspace."""
    if table == "workspaces":
        return world.owner_of.get(values["id"], "other")
    if table == "operators":
        found = {"A" if m == "A2" else m for m in memberships.get(values["id"], ())}
        return next(iter(found)) if len(found) == 1 else "shared"
    if "workspace_id" in values:
        ws = values["workspace_id"]
        return "platform" if ws is None else world.owner_of.get(ws, "other")
    return "platform"


def fingerprint(engine: Engine, world: World) -> Fingerprint:
    """A digest of every table's rows, per (table, owner)."""
    rows_of: dict[tuple[str, str], list[str]] = defaultdict(list)
    with engine.connect() as conn:
        memberships: dict[int, set[str]] = defaultdict(set)
        for operator, ws in conn.execute(select(Membership.operator_id, Membership.workspace_id)):
            memberships[operator].add(world.owner_of.get(ws, "other"))
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table).order_by(*table.primary_key.columns)):
                values = row._mapping
                owner = _owner(table.name, values, world, memberships)
                rows_of[(table.name, owner)].append(repr(tuple(values.values())))
    return {key: hashlib.sha256("\n".join(r).encode()).hexdigest() for key, r in rows_of.items()}


def changed(before: Fingerprint, after: Fingerprint) -> set[tuple[str, str]]:
    """The (table, owner) pairs whose rows differ."""
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


class Snapshot:
    """Every row as built, kept in memory; ``restore`` writes back the tables a cell changed
    (all their rows, whoever owns them), with foreign keys off meanwhile so that no cascade
    reaches a table left as it is. Sequences move on, which no check reads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.restores = 0
        with engine.connect() as conn:
            self.rows = {
                table.name: [dict(row._mapping) for row in conn.execute(select(table))]
                for table in Base.metadata.sorted_tables
            }

    def restore(self, tables: set[str]) -> None:
        self.restores += 1
        ordered = [t for t in Base.metadata.sorted_tables if t.name in tables]
        if self.engine.dialect.name == "sqlite":
            # The product's engine turns foreign keys on for every connection; this one leaves
            # them off (SQLite's default), and a PRAGMA cannot change inside a transaction.
            raw = create_engine(self.engine.url, poolclass=NullPool)
            try:
                self._write(raw, ordered, "PRAGMA foreign_keys=OFF")
            finally:
                raw.dispose()
            return
        # PostgreSQL: a replica session skips the foreign keys' triggers, cascades included.
        self._write(self.engine, ordered, "SET LOCAL session_replication_role = replica")

    def _write(self, engine: Engine, ordered: list[Any], keys_off: str) -> None:
        with engine.connect() as conn:
            conn.execute(text(keys_off))
            for table in reversed(ordered):
                conn.execute(table.delete())
            for table in ordered:
                if self.rows[table.name]:
                    conn.execute(table.insert(), self.rows[table.name])
            conn.commit()
