"""What logging every provider call costs (issue 14: at most 5%): the same work with the call
log on and off, side by side in one run, in alternating order.

Two workloads, each run by the product's outbox ``Drainer`` (the threads ``scheduler.py`` runs:
``HUB_OUTBOX_THREADS``, ``HUB_OUTBOX_PROVIDER_THREADS``) in this process, against the Stripe
sandbox in a process of its own:

- **provider-job drain**: ``--jobs`` ``stripe.sync_customer`` jobs queued at once, each finding or
  making a buyer's Stripe customer (search, list, create: three requests);
- **invoice generation**: "Generate all" for a show of ``--buyers`` buyers (each job: the
  customer, the invoice, its lines, finalize, send).

Each run gets a workspace and a Stripe account of its own (nothing one run made is found by the
next). *On*: ``call_log.enabled`` and the writer thread running (``call_log_writer.Writer``, as
every product process starts it), stopped with its final flush after the run; *off*:
``call_log.enabled = False`` and no writer. Runs go in pairs, the pairs' order alternating
(on-off, off-on, …: a drift of the machine or of the growing tables weighs on both); the cost
is the median over pairs of on/off - 1 in elapsed time (from the commit that queued the jobs to
the last job's completion), with the total time's ratio beside it and that of the CPU the work
used (this process: the drainer's and the writer's threads, SQLite's work included; and
PostgreSQL's server processes). On a shared machine the CPU is the steadier of the two: other
processes' load lengthens a run, it does not add to the CPU the run uses. Last, the CPU of one
logged call is measured apart (20,000 calls measured and buffered, then written in the writer's
batches) and set against the CPU a Stripe request took in the runs without logging: an
estimate of the cost that a busy machine cannot blur.

The product paces its Stripe requests to Stripe's 25/s (``circuits.RATE_LIMITS``): a paced run
takes as long as the limit says whatever logging costs, so the runs here are unpaced by
default (``--stripe-rate`` to pace them) and what they measure is the product's own work. The
no-op drain (bench_drain.py) calls no provider: logging cannot cost it anything.

    .venv/bin/python bench/bench_call_log.py                 # PostgreSQL, fsync on
    .venv/bin/python bench/bench_call_log.py --db sqlite     # the default deployment's database
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    _proc_table,
    _tree,
    conditions,
    database,
    log,
    print_conditions,
    product_env,
    started,
    verdict,
)
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

# Loads every domain's jobs.py: the job kinds run here are declared there.
import backend.jobs  # noqa: F401
from backend import config, db
from backend.connections import credentials
from backend.db import make_engine, session_scope
from backend.integrations import call_log
from backend.invoicing import buyers as buyer_jobs
from backend.invoicing import service as invoicing
from backend.jobs.drainer import Drainer
from backend.platform import call_log_writer, circuits
from backend.platform.actors import Actor
from models import Buyer, IntegrationLog, JobStatus, OutboxJob, Role
from tests.support.hub_env import connect_stripe
from tests.support.migrate import upgrade
from tests.support.pgserver import free_port
from tests.support.shows import make_show

COST_TARGET = 0.05
FINISHED = (JobStatus.DONE, JobStatus.DEAD)


@dataclass
class Run:
    workload: str
    logging: bool
    elapsed: float
    jobs: int
    dead: int
    requests: int
    logged: int
    cpu_seconds: float  # this process's (the drainer's threads, the writer's) + PostgreSQL's
    load: float


class Bench:
    def __init__(
        self,
        engine: Engine,
        sandbox_url: str,
        drainer: Callable[[], Drainer],
        database_cpu: Callable[[], float],
    ) -> None:
        self.engine = engine
        self.sandbox_url = sandbox_url
        self.drainer = drainer
        self.database_cpu = database_cpu
        self.count = 0
        self.last_workspace = 0

    def _workspace(self, label: str) -> int:
        import httpx

        self.count += 1
        account = httpx.post(
            f"{self.sandbox_url}/stripe/_sandbox/accounts", json={"name": label}, timeout=10
        ).json()
        return connect_stripe(
            self.engine, secret_key=account["secret_key"], slug=f"{label}-{self.count}"
        )

    def _queue_syncs(self, workspace_id: int, jobs: int) -> Callable[[], int]:
        show = make_show(
            self.engine, workspace_id=workspace_id, buyers=jobs, claims_per_buyer=1, items=1
        )

        def queue() -> int:
            with Session(self.engine) as session:
                rows = session.scalars(select(Buyer).where(Buyer.platform_user_id.in_(show.buyers)))
                queued = sum(1 for b in rows if buyer_jobs.request_customer_sync(session, buyer=b))
                session.commit()
            return queued

        return queue

    def _queue_invoices(self, workspace_id: int, buyers: int) -> Callable[[], int]:
        show = make_show(
            self.engine, workspace_id=workspace_id, buyers=buyers, claims_per_buyer=5, items=20
        )

        def queue() -> int:
            with Session(self.engine) as session:
                owner = Actor(operator_id=1, workspace_id=workspace_id, role=Role.OWNER)
                queued = invoicing.generate_all(session, actor=owner, show_id=show.id)
                session.commit()
            return queued

        return queue

    def run(self, workload: str, size: int, logging: bool) -> Run:
        import httpx

        workspace_id = self.last_workspace = self._workspace(workload)
        queue = (self._queue_syncs if workload == "drain" else self._queue_invoices)(
            workspace_id, size
        )
        httpx.delete(f"{self.sandbox_url}/_sandbox/requests", timeout=10).raise_for_status()
        call_log.BUFFER.take()
        call_log.enabled = logging
        writer = call_log_writer.Writer(lambda: self.engine) if logging else None
        if writer is not None:
            writer.start()
        cpu0 = time.process_time() + self.database_cpu()
        queued = queue()
        started_at = time.time()
        drainer = self.drainer()
        drainer.start()
        try:
            while _unfinished(self.engine, workspace_id):
                time.sleep(0.05)
        finally:
            drainer.stop()
        if writer is not None:
            writer.stop()  # its final flush (a second's calls at most) counts in the CPU
        cpu = time.process_time() + self.database_cpu() - cpu0
        load = os.getloadavg()[0]
        call_log.enabled = True
        last, dead = _finished(self.engine, workspace_id)
        answered = httpx.get(f"{self.sandbox_url}/_sandbox/requests", timeout=10).json()
        with Session(self.engine) as session:
            logged = session.scalar(
                select(func.count())
                .select_from(IntegrationLog)
                .where(IntegrationLog.workspace_id == workspace_id)
            )
        return Run(
            workload,
            logging,
            last - started_at,
            queued,
            dead,
            int(answered.get("stripe", {}).get("requests", 0)),
            int(logged or 0),
            cpu,
            load,
        )


def _unfinished(engine: Engine, workspace_id: int) -> int:
    with Session(engine) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(OutboxJob)
                .where(OutboxJob.workspace_id == workspace_id, OutboxJob.status.not_in(FINISHED))
            )
            or 0
        )


def _finished(engine: Engine, workspace_id: int) -> tuple[float, int]:
    with Session(engine) as session:
        last = session.scalar(
            select(func.max(OutboxJob.finished_at)).where(OutboxJob.workspace_id == workspace_id)
        )
        dead = session.scalar(
            select(func.count())
            .select_from(OutboxJob)
            .where(OutboxJob.workspace_id == workspace_id, OutboxJob.status == JobStatus.DEAD)
        )
    assert last is not None
    return last.timestamp(), int(dead or 0)


@contextlib.contextmanager
def _database(kind: str) -> Iterator[tuple[str, dict[str, str], Callable[[], float]]]:
    """(URL, facts, the CPU seconds its server has used so far) of a fresh migrated database
    of ``kind`` (SQLite's work is this process's own)."""
    if kind == "postgresql":
        with database(durable=True) as pg:
            postmaster = int((pg.server.data_dir / "postmaster.pid").read_text().split()[0])

            def used() -> float:
                table = _proc_table()
                return sum(table[pid][1] for pid in _tree(table, {postmaster}) if pid in table)

            yield pg.url, conditions(pg), used
        return
    with tempfile.TemporaryDirectory(prefix="bench-call-log-") as folder:
        url = f"sqlite:///{folder}/hub.db"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        facts = {"database": "SQLite (a file in a temporary folder), as `make run` uses"}
        yield url, facts, lambda: 0.0


def _use_settings(env: dict[str, str]) -> None:
    """This process reads its settings (the database, the sandbox) as the product does."""
    for key, value in env.items():
        if key.startswith("HUB_"):
            os.environ[key] = value
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    credentials.key_ring.cache_clear()


def _pairs(count: int) -> Iterator[tuple[bool, bool]]:
    for index in range(count):
        yield (True, False) if index % 2 == 0 else (False, True)


@dataclass(frozen=True)
class PerCall:
    record_us: float  # measuring and buffering one call, in the caller's thread
    write_us: float  # writing it, row and rollups, in batches: this process and the database


def per_call(engine: Engine, workspace_id: int, database_cpu: Callable[[], float]) -> PerCall:
    """The CPU one logged call costs, measured apart from any provider's round trip: what the
    elapsed figures cannot resolve on a busy machine, the CPU can."""
    count, batch = 20_000, call_log.BUFFER.batch
    call_log.enabled = True
    call_log.BUFFER.take()
    with call_log.scope(workspace_id=workspace_id, job_id=1):
        started = time.process_time()
        for n in range(count):
            call_log.record(
                call_log.measured(
                    "stripe",
                    "POST",
                    f"http://127.0.0.1:1/stripe/v1/invoices/in_{n:024d}/finalize",
                    status=200,
                    reason="OK",
                    error=None,
                    timed_out=False,
                    latency_ms=40 + n % 300,
                )
            )
        record = time.process_time() - started
    calls = call_log.BUFFER.take()
    started = time.process_time() + database_cpu()
    for at in range(0, count, batch):
        with session_scope(engine) as session:
            call_log_writer.write(session, calls[at : at + batch])
    write = time.process_time() + database_cpu() - started
    return PerCall(record / count * 1e6, write / count * 1e6)


def _estimate(runs: list[Run], cost: PerCall) -> tuple[float, str]:
    """What logging adds to the CPU of the runs without it, at ``cost`` per request."""
    off = [r for r in runs if not r.logging]
    requests = sum(r.requests for r in off)
    used_us = sum(r.cpu_seconds for r in off) * 1e6
    added = (cost.record_us + cost.write_us) * requests / used_us
    return added, (
        f"the runs without logging used {used_us / requests:.0f} µs of CPU a Stripe request; "
        f"logging one adds {cost.record_us + cost.write_us:.0f} µs: {added:+.1%}"
    )


def _report(runs: list[Run]) -> tuple[float, str]:
    on = [r for r in runs if r.logging]
    off = [r for r in runs if not r.logging]
    ratios = [a.elapsed / b.elapsed for a, b in zip(on, off, strict=True)]
    cost = statistics.median(ratios) - 1
    total = sum(r.elapsed for r in on) / sum(r.elapsed for r in off) - 1
    cpu = sum(r.cpu_seconds for r in on) / sum(r.cpu_seconds for r in off) - 1
    for r in runs:
        print(
            f"  {'on ' if r.logging else 'off'} {r.elapsed:7.2f} s  {r.jobs} jobs ({r.dead} dead), "
            f"{r.requests} Stripe requests, {r.logged} logged, CPU {r.cpu_seconds:.2f} s, "
            f"load {r.load:.2f}"
        )
    summary = (
        f"on/off per pair {', '.join(f'{x:.3f}' for x in ratios)}; median cost {cost:+.1%}, "
        f"total time {total:+.1%}; CPU (this process and the database server) {cpu:+.1%}"
    )
    print(f"  {summary}")
    return cost, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--jobs", type=int, default=300, help="sync jobs a drain run")
    parser.add_argument("--buyers", type=int, default=150, help="invoices a generation run")
    parser.add_argument("--pairs", type=int, default=8, help="on/off pairs a workload")
    parser.add_argument(
        "--stripe-rate",
        type=float,
        default=0.0,
        help="the product's Stripe pacing, requests/s (0: unpaced; the product's is 25)",
    )
    args = parser.parse_args()
    # Stopped from outside: unwind, so that the sandbox and the database stop with the bench.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.stripe_rate:
        circuits.RATE_LIMITS["stripe"] = args.stripe_rate
    else:
        circuits.RATE_LIMITS.pop("stripe", None)  # no bucket: nothing to wait for

    with _database(args.db) as (url, facts, database_cpu), contextlib.ExitStack() as stack:
        port = free_port()
        env = product_env(
            url,
            HUB_PROVIDER_MODE="sandbox",
            HUB_SANDBOX_PORT=str(port),
            HUB_SANDBOX_STATE_FILE="",
        )
        sandbox_url = f"http://127.0.0.1:{port}"
        sandbox = stack.enter_context(started("sandbox", [PYTHON, "-m", "backend.sandbox"], env))
        _wait(sandbox_url, sandbox)
        _use_settings(env)
        settings = config.get_settings()
        engine = db.get_engine()

        def drainer() -> Drainer:
            return Drainer(
                engine,
                threads=settings.outbox_threads,
                batch=settings.outbox_batch,
                provider_threads=settings.outbox_provider_threads,
            )

        bench = Bench(engine, sandbox_url, drainer, database_cpu)
        log("warming up (one small run of each workload)")
        bench.run("drain", 50, True)
        bench.run("invoices", 30, True)
        results: dict[str, list[Run]] = {"drain": [], "invoices": []}
        for workload, size in (("drain", args.jobs), ("invoices", args.buyers)):
            for pair in _pairs(args.pairs):
                for logging in pair:
                    done = bench.run(workload, size, logging)
                    log(f"{workload} logging {'on' if logging else 'off'}: {done.elapsed:.2f} s")
                    results[workload].append(done)
        log("the CPU of one logged call")
        cost = per_call(engine, bench.last_workspace, database_cpu)
        load = os.getloadavg()
        facts.update(
            {
                "runs": f"{args.pairs} pairs a workload (order alternating), in this process: "
                f"Drainer with HUB_OUTBOX_THREADS={settings.outbox_threads}, "
                f"HUB_OUTBOX_PROVIDER_THREADS={settings.outbox_provider_threads}, "
                f"HUB_OUTBOX_BATCH={settings.outbox_batch}; the call log writer every "
                f"{call_log_writer.INTERVAL_SECONDS:g} s or {call_log.BUFFER.batch} calls",
                "sandbox": "python -m backend.sandbox (one process, state in memory)",
                "stripe_pacing": f"{args.stripe_rate:g}/s" if args.stripe_rate else "none",
                "load_average_at_end": " ".join(f"{x:.2f}" for x in load),
            }
        )

    print()
    print(f"== call log on vs off (bench/bench_call_log.py, {args.db})")
    print_conditions(facts)
    print(
        f"one logged call: {cost.record_us:.1f} µs to measure and buffer (in the caller's "
        f"thread), {cost.write_us:.1f} µs to write with its rollups (writer thread and database)"
    )
    checks = []
    for workload, runs in results.items():
        title = (
            f"provider-job drain ({args.jobs} stripe.sync_customer jobs)"
            if workload == "drain"
            else f"invoice generation ({args.buyers} invoices)"
        )
        print(f"{title}:")
        ratio, summary = _report(runs)
        added, estimate = _estimate(runs, cost)
        print(f"  CPU estimate: {estimate}")
        complete = all(r.logged == r.requests for r in runs if r.logging)
        checks.append(
            (f"{title}: logging costs <= {COST_TARGET:.0%}", ratio <= COST_TARGET, summary)
        )
        checks.append(
            (f"{title}: logging adds <= {COST_TARGET:.0%} CPU", added <= COST_TARGET, estimate)
        )
        checks.append(
            (
                f"{title}: every Stripe request logged in the on runs",
                complete and all(r.dead == 0 for r in runs),
                ", ".join(f"{r.logged}/{r.requests}" for r in runs if r.logging),
            )
        )
    return verdict(checks)


def _wait(url: str, process: object) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/_sandbox/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the sandbox did not start: {process}")


if __name__ == "__main__":
    raise SystemExit(main())
