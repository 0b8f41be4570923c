"""Outbox drain: 100,000 no-op jobs, queued at once, run by two worker processes (the product's
Drainer, as scheduler.py runs it) on PostgreSQL with fsync and synchronous_commit on.

Target (issue 4): at least 10,000 jobs/s, every job done exactly once. Checked three ways: the
outbox (100,000 jobs done, each in one attempt), the jobs' own effect (each no-op job inserts
its id into a table whose primary key is the job id, in the job's transaction) and the
workers' in-memory count of handler runs (one per job, no job in two workers).

    .venv/bin/python bench/bench_drain.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    ROOT,
    CpuMeter,
    conditions,
    database,
    log,
    print_conditions,
    product_env,
    started,
    verdict,
    wait_for_line,
)
from sqlalchemy import Engine, text

from backend.config import Settings

JOBS_TARGET = 10_000.0
KIND = "bench.noop"


def queue_jobs(engine: Engine, count: int) -> float:
    """Queue ``count`` jobs in one transaction (waking the workers); the commit's time. Each
    gets its own time, as jobs enqueued one by one (``outbox.enqueue``) do."""
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO outbox_jobs
                    (kind, provider, payload, idempotency_key, workspace_id, status, attempts,
                     max_attempts, run_after, fair_at, created_at)
                SELECT :kind, NULL, jsonb_build_object('n', n), 'bench:' || n, NULL, 'pending',
                       0, 6, clock_timestamp(), clock_timestamp(), clock_timestamp()
                FROM generate_series(1, :count) AS n
                """
            ),
            {"kind": KIND, "count": count},
        )
        conn.execute(text("NOTIFY outbox"))
    return time.time()


def progress(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, count(*) FROM outbox_jobs WHERE kind = :kind GROUP BY status"),
            {"kind": KIND},
        ).all()
    return {str(status): int(count) for status, count in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--threads",
        type=int,
        default=Settings.model_fields["outbox_threads"].default,
        help="drainer threads a process (default: HUB_OUTBOX_THREADS's default)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=Settings.model_fields["outbox_batch"].default,
        help="jobs a thread claims at a time (default: HUB_OUTBOX_BATCH's default)",
    )
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()

    with database(durable=True) as db:
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TABLE bench_drain_effects (job_id INTEGER PRIMARY KEY, "
                    "worker TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())"
                )
            )
        env = product_env(
            db.url, HUB_OUTBOX_THREADS=str(args.threads), HUB_OUTBOX_BATCH=str(args.batch)
        )
        outs = [
            Path(tempfile.mkstemp(prefix="bench-drain-", suffix=".json")[1])
            for _ in range(args.workers)
        ]
        workers = []
        with contextlib.ExitStack() as stack:
            for index, out in enumerate(outs):
                command = [PYTHON, str(ROOT / "bench" / "drain_worker.py"), str(out)]
                workers.append(stack.enter_context(started(f"drain-worker-{index}", command, env)))
            for worker in workers:
                wait_for_line(worker, "READY", timeout=60)
            log(f"{args.workers} workers ready; queueing {args.jobs} jobs")
            meter = CpuMeter(db, [w.popen.pid for w in workers])
            queued_at = queue_jobs(db.engine, args.jobs)
            meter.start()
            deadline = time.monotonic() + args.timeout
            counts = progress(db.engine)
            while counts.get("done", 0) < args.jobs and time.monotonic() < deadline:
                time.sleep(0.25)
                counts = progress(db.engine)
            cpu = meter.stop()
            for worker in workers:
                worker.stop()
            with db.engine.connect() as conn:
                last_done = conn.execute(
                    text(
                        "SELECT extract(epoch FROM max(finished_at)) FROM outbox_jobs "
                        "WHERE kind = :kind"
                    ),
                    {"kind": KIND},
                ).scalar_one()
                repeated = conn.execute(
                    text("SELECT count(*) FROM outbox_jobs WHERE kind = :kind AND attempts <> 1"),
                    {"kind": KIND},
                ).scalar_one()
                effects = conn.execute(
                    text(
                        "SELECT count(*), count(DISTINCT e.job_id), "
                        "count(*) FILTER (WHERE j.status = 'done') "
                        "FROM bench_drain_effects e LEFT JOIN outbox_jobs j ON j.id = e.job_id"
                    )
                ).one()
                by_worker = dict(
                    conn.execute(
                        text("SELECT worker, count(*) FROM bench_drain_effects GROUP BY worker")
                    ).all()
                )
            facts = conditions(
                db,
                workers=f"{args.workers} processes (bench/drain_worker.py: the product's "
                f"Drainer), {args.threads} drainer threads each, batches of {args.batch}",
                jobs=args.jobs,
                job="bench.noop: counts its run and inserts its id into a PRIMARY KEY table",
                cpu_during_run=cpu,
            )
    runs: dict[int, int] = {}
    overlap = 0
    for out in outs:
        data = json.loads(out.read_text() or "{}") if out.stat().st_size else {"runs": []}
        out.unlink(missing_ok=True)
        for job_id, count in data.get("runs", []):
            if job_id in runs:
                overlap += 1
            runs[job_id] = runs.get(job_id, 0) + count

    done = counts.get("done", 0)
    elapsed = (float(last_done) - queued_at) if last_done is not None else float("nan")
    rate = done / elapsed if elapsed > 0 else 0.0
    print()
    print("== outbox drain (bench/bench_drain.py)")
    print_conditions(facts)
    print(
        f"drained {done} of {args.jobs} jobs in {elapsed:.2f} s (queue commit to last job's "
        f"completion): {rate:.0f} jobs/s; statuses {counts}"
    )
    print(
        f"exactly once: {repeated} jobs with more than one attempt; effect rows "
        f"{effects[0]} ({effects[1]} distinct job ids, {effects[2]} of them on done jobs), "
        f"by worker {by_worker}; handler runs {sum(runs.values())} over {len(runs)} jobs, "
        f"max {max(runs.values(), default=0)} a job, {overlap} jobs run in two workers"
    )
    exactly_once = (
        done == args.jobs
        and repeated == 0
        and effects[0] == effects[1] == effects[2] == args.jobs
        and len(runs) == args.jobs
        and sum(runs.values()) == args.jobs
        and overlap == 0
    )
    return verdict(
        [
            (f">= {JOBS_TARGET:.0f} jobs/s", rate >= JOBS_TARGET, f"{rate:.0f} jobs/s"),
            (
                f"all {args.jobs} jobs done, each exactly once",
                exactly_once,
                f"{done} done, {effects[0]} effects, {sum(runs.values())} runs",
            ),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
