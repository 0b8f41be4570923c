"""Shared fixtures.

Every test that asks for ``engine`` (or ``session``, ``db_url``) runs twice: on SQLite and on a
throwaway PostgreSQL server that this test run starts and removes. Each test gets a fresh
database copied from a template that the real Alembic migrations built once per run.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from backend.db import make_engine
from tests.support import pgserver
from tests.support.migrate import upgrade

pytest_plugins = [
    "tests.support.sandbox_fixtures",
    "tests.support.hub_env",
    "tests.support.shop",
    # No provider call and no password hash inside an open transaction: fails any test that
    # makes one (docs/security/transactions.md).
    "tests.support.tx_guard",
    "tests.support.call_log_fixtures",
    "pytester",  # tests/test_tx_guard.py runs a test file of its own through the guard
]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DATABASES = ("sqlite", "postgresql")


def unavailable(reason: str) -> None:
    """Outside CI a missing tool skips; under CI=true it fails, so nothing passes by not running."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgserver.PostgresServer]:
    try:
        server = pgserver.start()
    except pgserver.PostgresUnavailable as exc:
        unavailable(str(exc))
        raise  # unreachable: unavailable() skips or fails
    try:
        admin = make_engine(server.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE hub_template"))
        admin.dispose()
        template = make_engine(server.url("hub_template"))
        upgrade(template)
        template.dispose()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, migrated database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "hub.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server: pgserver.PostgresServer = request.getfixturevalue("pg_server")
    name, url = pgserver.create_database(server)
    yield url
    pgserver.drop_database(server, name)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["postgresql"])
def pg_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """PostgreSQL only, for its own features (batch statements, advisory locks, SKIP LOCKED
    under real concurrency). The id carries "postgresql" so the per-database summary counts it."""
    server: pgserver.PostgresServer = request.getfixturevalue("pg_server")
    name, url = pgserver.create_database(server)
    engine = make_engine(url)
    yield engine
    engine.dispose()
    pgserver.drop_database(server, name)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session for arranging and checking; tests commit where the code under test would."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


_DB_ID = re.compile(r"\[(?:[^\]]*-)?(sqlite|postgresql)(?:-[^\]]*)?\]")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say plainly how many database tests ran on each database."""
    counts: dict[str, Counter[str]] = {db: Counter() for db in DATABASES}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            match = _DB_ID.search(getattr(report, "nodeid", ""))
            if match and (report.when == "call" or outcome in ("error", "skipped")):
                counts[match.group(1)][outcome] += 1
    if any(counts.values()):
        parts = [
            f"{db}: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(c.items()))
            for db, c in counts.items()
        ]
        terminalreporter.write_line("database tests — " + "; ".join(parts))
