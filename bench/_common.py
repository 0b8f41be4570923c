"""What the benchmarks share: a throwaway PostgreSQL, the product's processes, the load
generator processes, and the conditions every figure is printed with."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from backend.connections import credentials  # noqa: E402
from backend.db import make_engine  # noqa: E402
from models import Integration, IntegrationStatus, Plan, Workspace  # noqa: E402
from tests.support import pgserver  # noqa: E402
from tests.support.migrate import upgrade  # noqa: E402
from tests.support.pgserver import free_port  # noqa: E402
from tests.support.processes import env_for  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "reference" / "stripe-fixtures3.json"
WORKSPACE = "bench"
STRIPE_SECRET = "whsec_bench_0123456789abcdefghijklmnopqrstuv"  # noqa: S105 - a bench value
PYTHON = sys.executable


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Database:
    server: pgserver.PostgresServer
    url: str
    engine: Engine

    def setting(self, name: str) -> str:
        with self.engine.connect() as conn:
            return str(conn.execute(text(f"SHOW {name}")).scalar())


@contextlib.contextmanager
def database(*, durable: bool, extra: tuple[str, ...] = ()) -> Iterator[Database]:
    """A fresh PostgreSQL cluster (fsync and synchronous_commit on when ``durable``), migrated."""
    server = pgserver.start(
        fsync=durable,
        extra=(
            "shared_buffers=512MB",
            "max_wal_size=4GB",
            "checkpoint_timeout=30min",
            *extra,
        ),
    )
    try:
        admin = make_engine(server.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE hub_bench"))
        admin.dispose()
        url = server.url("hub_bench")
        engine = make_engine(url)
        upgrade(engine)
        try:
            yield Database(server, url, engine)
        finally:
            engine.dispose()
    finally:
        server.stop()


def seed_stripe_workspace(engine: Engine, *, slug: str = WORKSPACE) -> int:
    """A workspace whose Stripe integration holds the bench's webhook signing secret."""
    with Session(engine) as session:
        workspace = Workspace(name="Bench", slug=slug, plan=Plan.PRO)
        session.add(workspace)
        session.flush()
        integration = Integration(
            workspace_id=workspace.id,
            provider="stripe",
            display_name="Stripe",
            status=IntegrationStatus.ACTIVE,
        )
        session.add(integration)
        session.flush()
        credentials.seal(integration, {"webhook_signing_secret": STRIPE_SECRET})
        session.commit()
        found = session.scalar(select(Workspace.id).where(Workspace.slug == slug))
        assert found is not None
        return found


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)


@contextlib.contextmanager
def started(name: str, command: list[str], env: dict[str, str]) -> Iterator[Process]:
    """A process for the block, in its own session (so that its children stop with it)."""
    log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the process
        prefix=f"bench-{name}-", suffix=".log", delete=False
    )
    popen = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    process = Process(name, popen, Path(log_file.name))
    try:
        yield process
    finally:
        process.stop()
        log_file.close()
        if os.environ.get("BENCH_KEEP_LOGS"):
            log(f"{name} log kept at {process.log_path}")
        else:
            process.log_path.unlink(missing_ok=True)


def chromium() -> str:
    """The machine's Chromium, for the benchmarks that measure a console page."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    raise SystemExit("no Chromium here: apt-get install chromium (as the browser tests need)")


def wait_http(url: str, process: Process, timeout: float) -> None:
    """Until ``url`` answers 200, or ``process`` exits (its log's end is the error)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited:\n{process.output()[-4000:]}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not answering after {timeout}s:\n{process.output()[-4000:]}")


@contextlib.contextmanager
def started_console(database_url: str) -> Iterator[tuple[str, Process]]:
    """The console as deployed (``reflex run --env prod``: the production build, one port) on
    ``database_url``, answering: its base URL and its process."""
    port = free_port()
    env = product_env(
        database_url,
        HUB_CONSOLE_PORT=str(port),
        HUB_PUBLIC_CONSOLE_URL=f"http://127.0.0.1:{port}",
        REFLEX_USE_NPM="1",
    )
    command = [
        PYTHON,
        *("-m", "reflex", "run", "--env", "prod"),
        *("--frontend-port", str(port), "--backend-port", str(port)),
        *("--backend-host", "127.0.0.1"),
    ]
    base = f"http://127.0.0.1:{port}"
    with started("console", command, env) as console:
        log("starting the console (the first production build takes a minute or two)")
        wait_http(f"{base}/ping", console, timeout=900)
        wait_http(f"{base}/", console, timeout=120)
        log("console up")
        yield base, console


def started_schedulers(
    stack: contextlib.ExitStack, count: int, env: dict[str, str]
) -> list[Process]:
    """``count`` real ``python scheduler.py`` processes for the stack's life, each started."""
    schedulers = [
        stack.enter_context(
            started(
                f"scheduler-{n}",
                [PYTHON, str(ROOT / "scheduler.py")],
                {**env, "HUB_LOG_LEVEL": "INFO"},  # to see its "scheduler.started" line
            )
        )
        for n in range(count)
    ]
    for scheduler in schedulers:
        wait_for_line(scheduler, "scheduler.started", timeout=60)
    return schedulers


def wait_for_line(process: Process, line: str, timeout: float) -> None:
    """Wait until ``process`` has printed ``line`` (its readiness), or fail with its output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line in process.output():
            return
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited:\n{process.output()[-4000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} not ready after {timeout}s:\n{process.output()[-4000:]}")


def product_env(database_url: str, **extra: str) -> dict[str, str]:
    env = env_for(database_url, **{"HUB_LOG_LEVEL": "WARNING", **extra})
    # The project first; a path the caller already had (a local site customization) after it.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


SIDECAR_WORKERS = 2


def sidecar_command(port: int, workers: int = SIDECAR_WORKERS) -> list[str]:
    """The sidecar as deployed (see docs/OPERATIONS.md): uvicorn with uvloop and httptools,
    one worker a core, no per-request access log."""
    return [
        PYTHON,
        "-m",
        "uvicorn",
        "backend.api.app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",
        "4096",
    ]


def wait_ready(port: int, process: Process, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited:\n{process.output()[-4000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{process.name} not ready after {timeout}s:\n{process.output()[-4000:]}")


def run_load(
    port: int,
    *,
    processes: int,
    mode: str,
    duration: float,
    connections: int,
    rate: float = 0.0,
    warmup: float = 0.0,
    prefix: str,
    invoice_prefix: str = "b",
    sends: bool = False,
    first_seq: int = 0,
    seq_stride: int = 10_000_000,
) -> dict[str, Any]:
    """Run ``processes`` load generator processes together and merge their summaries."""
    outs = []
    popens = []
    start_at = time.time() + 1.0
    for index in range(processes):
        out = Path(tempfile.mkstemp(prefix="bench-load-", suffix=".json")[1])
        outs.append(out)
        command = [
            PYTHON,
            str(ROOT / "bench" / "loadgen.py"),
            f"--port={port}",
            f"--workspace={WORKSPACE}",
            f"--secret={STRIPE_SECRET}",
            f"--fixture={FIXTURES}",
            f"--mode={mode}",
            f"--connections={max(1, connections // processes)}",
            f"--rate={rate / processes}",
            f"--duration={duration}",
            f"--warmup={warmup}",
            f"--prefix={prefix}{index}",
            f"--invoice-prefix={invoice_prefix}",
            f"--first-seq={first_seq + index * seq_stride}",
            f"--start-at={start_at}",
            f"--out={out}",
        ]
        if sends:
            command.append("--sends")
        popens.append(subprocess.Popen(command, cwd=ROOT))
    for popen in popens:
        popen.wait(timeout=duration + 180)
        if popen.returncode != 0:
            raise RuntimeError(f"load generator failed with {popen.returncode}")
    parts = [json.loads(out.read_text()) for out in outs]
    for out in outs:
        out.unlink(missing_ok=True)
    return merge(parts)


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Sums of counts; latency percentiles are the worst shard's (each shard has a share of
    the same traffic, so they differ only by noise), throughput is summed."""
    merged: dict[str, Any] = dict(parts[0])
    for key in ("requests", "ok", "connection_errors", "reconnects"):
        merged[key] = sum(p[key] for p in parts)
    merged["ok_per_second"] = sum(p["ok_per_second"] for p in parts)
    for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
        merged[key] = max(p[key] for p in parts)
    statuses: dict[str, int] = {}
    for part in parts:
        for status, count in part["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    merged["statuses"] = statuses
    merged["connections"] = sum(p["connections"] for p in parts)
    merged["target_rate"] = sum(p["target_rate"] for p in parts)
    merged["generators"] = len(parts)
    if "sends" in parts[0]:
        merged["sends"] = [row for p in parts for row in p["sends"]]
    return merged


# -- where the CPU went -----------------------------------------------------------------------
# The machine is shared: a figure means little without knowing what else ran meanwhile.


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds so far) for every process."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return table


def _machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _tree(table: dict[int, tuple[int, float]], roots: set[int]) -> set[int]:
    found = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, (parent, _) in table.items():
            if parent in found and pid not in found:
                found.add(pid)
                grew = True
    return found


class CpuMeter:
    """CPU used during a measurement by the server processes (``roots`` and their children),
    PostgreSQL, the load generators (this process's finished children) and everything else."""

    def __init__(self, db: Database, roots: list[int] | dict[int, str]) -> None:
        """``roots``: the server processes' pids, or pid -> name to name them in the summary."""
        self._db = db
        self._names = roots if isinstance(roots, dict) else {pid: "" for pid in roots}
        self._roots = set(self._names)

    def _label(self, pid: int, table: dict[int, tuple[int, float]]) -> str:
        """The name of ``pid``'s root (``name child`` for its descendants)."""
        seen = pid
        while seen not in self._names and seen in table:
            seen = table[seen][0]
        name = self._names.get(seen, "")
        if not name:
            return ""
        return f"{name} " if seen == pid else f"{name} child "

    def _postmaster(self) -> int:
        pid_file = self._db.server.data_dir / "postmaster.pid"
        return int(pid_file.read_text().split()[0])

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._busy0 = _machine_busy()
        self._table0 = _proc_table()
        self._children0 = os.times().children_user + os.times().children_system
        self._self0 = time.process_time()

    def stop(self) -> str:
        elapsed = time.monotonic() - self._t0
        busy = _machine_busy() - self._busy0
        table = _proc_table()
        children = os.times().children_user + os.times().children_system - self._children0
        bench = time.process_time() - self._self0

        def used(pids: set[int]) -> float:
            return sum(
                table[pid][1] - self._table0.get(pid, (0, 0.0))[1] for pid in pids if pid in table
            )

        server_pids = _tree(table, self._roots)
        servers = used(server_pids)
        busiest = sorted(
            ((used({pid}) / elapsed, self._label(pid, table)) for pid in server_pids),
            reverse=True,
        )[:4]
        postgres = used(_tree(table, {self._postmaster()}))
        load = children + bench
        other = max(0.0, busy - servers - postgres - load)
        cpus = os.cpu_count() or 1
        self.summary = {
            "seconds": elapsed,
            "servers": servers / elapsed,
            "postgres": postgres / elapsed,
            "load_and_bench": load / elapsed,
            "other_processes": other / elapsed,
            "machine": busy / elapsed,
            "cpus": cpus,
        }
        return (
            f"over {elapsed:.1f} s, in cores: server processes {servers / elapsed:.2f} "
            f"(busiest: {', '.join(f'{name}{c:.2f}' for c, name in busiest)}), "
            f"PostgreSQL {postgres / elapsed:.2f}, load generator + bench "
            f"{load / elapsed:.2f}, other processes on the machine {other / elapsed:.2f} "
            f"(machine busy {busy / elapsed:.2f} of {cpus})"
        )


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def conditions(db: Database, **extra: Any) -> dict[str, Any]:
    with db.engine.connect() as conn:
        server_version = conn.execute(text("SHOW server_version")).scalar()
    facts: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "postgresql": server_version,
        "fsync": db.setting("fsync"),
        "synchronous_commit": db.setting("synchronous_commit"),
        "full_page_writes": db.setting("full_page_writes"),
        "wal_sync_method": db.setting("wal_sync_method"),
        "postgresql_tuning": ", ".join(
            f"{name}={db.setting(name)}"
            for name in ("shared_buffers", "max_wal_size", "checkpoint_timeout", "max_connections")
        ),
        "inbound_payload_compression": _payload_compression(db),
        "python": platform.python_version(),
        "uvicorn": _version("uvicorn"),
        "uvloop": _version("uvloop"),
        "httptools": _version("httptools"),
        "fastapi": _version("fastapi"),
        "sqlalchemy": _version("sqlalchemy"),
        "psycopg": _version("psycopg"),
    }
    facts["code"] = _code_version()
    facts.update(extra)
    return facts


def _payload_compression(db: Database) -> str:
    with db.engine.connect() as conn:
        method = conn.execute(
            text(
                "SELECT attcompression FROM pg_attribute "
                "WHERE attrelid = 'inbound_events'::regclass AND attname = 'payload'"
            )
        ).scalar()
    return {"l": "lz4", "p": "pglz"}.get(str(method or ""), "default (pglz)")


def _code_version() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=10
        )
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" with uncommitted changes" if git("status", "--porcelain") else "")


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def print_conditions(facts: dict[str, Any]) -> None:
    print("conditions:")
    for key, value in facts.items():
        print(f"  {key}: {value}")


def verdict(checks: list[tuple[str, bool, str]]) -> int:
    """Print each target with PASS/FAIL; the exit status is 1 if any failed."""
    print("targets:")
    for name, ok, detail in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1
