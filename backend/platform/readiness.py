"""Is the database reachable and migrated to the code's revision? Used by /readyz and start-up.

Tested in tests/api/test_app.py (/readyz)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str
    database_revision: str | None
    code_revision: str | None


@cache
def code_head() -> str | None:
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def check(engine: Engine) -> Readiness:
    head = code_head()
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        # The exception's text can carry the URL with its password; keep only the class.
        return Readiness(False, f"database unreachable ({type(exc).__name__})", None, head)
    if current != head:
        return Readiness(
            False,
            f"database at revision {current or 'none'}, code expects {head}: run `make migrate`",
            current,
            head,
        )
    return Readiness(True, "ok", current, head)
