"""A throwaway PostgreSQL server for tests and benchmarks: initdb in a temporary folder, start on
a free loopback port, remove everything on stop. Uses the machine's PostgreSQL binaries."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    pass


def find_bin_dir() -> Path | None:
    if configured := os.environ.get("HUB_TEST_PG_BIN"):
        return Path(configured)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    bin_dir: Path
    data_dir: Path
    port: int
    run_as: str | None

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = list(args)
        if self.run_as:
            # initdb and the server refuse to run as root.
            command = ["runuser", "-u", self.run_as, "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def stop(self) -> None:
        try:
            self._run(
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "immediate",
                "-w",
                "stop",
            )
        finally:
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def start(*, fsync: bool = False, extra: tuple[str, ...] = ()) -> PostgresServer:
    """Start a fresh cluster. ``fsync=False`` suits tests; benchmarks of durability pass True."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailable("no PostgreSQL server binaries (initdb) found on this machine")
    root = Path(tempfile.mkdtemp(prefix="hub-pg-"))
    data_dir = root / "data"
    run_as = None
    if os.geteuid() == 0:
        run_as = "postgres"
        try:
            pw = pwd.getpwnam(run_as)
        except KeyError as exc:
            raise PostgresUnavailable("running as root but there is no 'postgres' user") from exc
        os.chown(root, pw.pw_uid, pw.pw_gid)
    server = PostgresServer(bin_dir, data_dir, free_port(), run_as)
    try:
        server._run(
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        options = [
            f"-p {server.port}",
            f"-k {root}",
            "-c listen_addresses=127.0.0.1",
            "-c max_connections=200",
            f"-c fsync={'on' if fsync else 'off'}",
            *(f"-c {option}" for option in extra),
        ]
        if not fsync:
            options += ["-c synchronous_commit=off", "-c full_page_writes=off"]
        server._run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data_dir),
            "-o",
            " ".join(options),
            "-l",
            str(root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(root, ignore_errors=True)
        detail = getattr(exc, "stderr", "") or ""
        raise PostgresUnavailable(f"could not start PostgreSQL: {detail.strip()[:500]}") from exc
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", server.port)) == 0:
                return server
        time.sleep(0.1)
    server.stop()
    raise PostgresUnavailable("PostgreSQL started but does not accept connections")


def create_database(server: PostgresServer, template: str = "hub_template") -> tuple[str, str]:
    """A fresh database copied from ``template``: (name, url)."""
    from sqlalchemy import text

    from backend.db import make_engine

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE {template}'))
    admin.dispose()
    return name, server.url(name)


def drop_database(server: PostgresServer, name: str) -> None:
    from sqlalchemy import text

    from backend.db import make_engine

    admin = make_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
