"""Webhook ingest: signed Stripe ``invoice.paid`` events (Stripe's invoice fixture, ~4 KB),
verified and durably stored (inbound_events + outbox_jobs in one transaction) by the sidecar on
PostgreSQL with fsync and synchronous_commit on; load from separate processes over loopback.

Targets (issue 4): at least 3,000 events/s stored; p99 <= 50 ms at a steady 1,000 events/s.

    .venv/bin/python bench/bench_ingest.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    SIDECAR_WORKERS,
    CpuMeter,
    conditions,
    database,
    log,
    print_conditions,
    product_env,
    run_load,
    seed_stripe_workspace,
    sidecar_command,
    started,
    verdict,
    wait_ready,
)
from sqlalchemy import text

from tests.support.pgserver import free_port

THROUGHPUT_TARGET = 3000.0
STEADY_RATE = 1000.0
P99_TARGET_MS = 50.0


def stored_counts(engine: object, prefix: str) -> tuple[int, int]:
    from sqlalchemy import Engine

    assert isinstance(engine, Engine)
    with engine.connect() as conn:
        events = conn.execute(
            text("SELECT count(*) FROM inbound_events WHERE external_id LIKE :p"),
            {"p": f"evt_{prefix}%"},
        ).scalar_one()
        jobs = conn.execute(
            text(
                "SELECT count(*) FROM outbox_jobs WHERE kind = 'inbox.process' "
                "AND idempotency_key LIKE :p"
            ),
            # The job key names the receiving integration before the event id.
            {"p": f"inbox:stripe:%evt_{prefix}%"},
        ).scalar_one()
    return int(events), int(jobs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=SIDECAR_WORKERS)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--generators", type=int, default=1)
    parser.add_argument("--rate", type=float, default=STEADY_RATE)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="HUB_X=VALUE",
        help="a setting for the sidecar (repeatable), e.g. HUB_WEBHOOK_INTAKE_WRITERS=4",
    )
    parser.add_argument("--skip-steady", action="store_true")
    parser.add_argument("--skip-max", action="store_true")
    args = parser.parse_args()

    with database(durable=True) as db:
        seed_stripe_workspace(db.engine)
        port = free_port()
        settings = dict(item.split("=", 1) for item in args.env)
        env = product_env(db.url, **settings)
        with started("sidecar", sidecar_command(port, args.workers), env) as sidecar:
            wait_ready(port, sidecar)
            log("sidecar ready; warming up")
            run_load(port, processes=1, mode="closed", duration=2, connections=16, prefix="w")

            meter = CpuMeter(db, [sidecar.popen.pid])
            throughput = steady = None
            cpu_max = cpu_steady = "not measured"
            # The steady phase first, on fresh tables: after the maximum phase, PostgreSQL's
            # autovacuum of its rows would run in the middle of it.
            if not args.skip_steady:
                log(f"steady rate: {args.rate:.0f}/s for {args.duration}s")
                meter.start()
                steady = run_load(
                    port,
                    processes=args.generators,
                    mode="rate",
                    rate=args.rate,
                    duration=args.duration + args.warmup,
                    warmup=args.warmup,
                    connections=256,
                    prefix="s",
                )
                cpu_steady = meter.stop()
            if not args.skip_max:
                log(f"max throughput: {args.connections} connections for {args.duration}s")
                meter.start()
                throughput = run_load(
                    port,
                    processes=args.generators,
                    mode="closed",
                    duration=args.duration + args.warmup,
                    warmup=args.warmup,
                    connections=args.connections,
                    prefix="m",
                )
                cpu_max = meter.stop()
                events, jobs = stored_counts(db.engine, "m")
                throughput["stored_events"] = events
                throughput["stored_jobs"] = jobs
            facts = conditions(
                db,
                sidecar=f"uvicorn backend.api.app:app, {args.workers} workers, uvloop, httptools",
                load=f"{args.generators} generator process(es), asyncio+uvloop, keep-alive",
                event_bytes=(throughput or steady or {}).get("event_bytes"),
                phase_seconds=f"{args.duration} (+{args.warmup} warm-up, not counted)",
                settings=settings or "defaults",
                cpu_during_max_throughput=cpu_max,
                cpu_during_steady_rate=cpu_steady,
            )
            if sidecar.popen.poll() is not None:
                print(sidecar.output()[-4000:])

    print()
    print("== webhook ingest (bench/bench_ingest.py)")
    print_conditions(facts)
    checks = []
    if throughput is not None:
        print(
            f"max throughput: {throughput['ok_per_second']:.0f} events/s stored "
            f"({throughput['ok']} answered 200 of {throughput['requests']}, "
            f"statuses {throughput['statuses']}, {throughput['connections']} connections); "
            f"latency p50 {throughput['p50_ms']:.1f} ms, p99 {throughput['p99_ms']:.1f} ms; "
            f"rows: {throughput['stored_events']} inbound_events, "
            f"{throughput['stored_jobs']} outbox_jobs"
        )
        all_stored = (
            throughput["stored_events"] >= throughput["ok"]
            and throughput["stored_jobs"] == throughput["stored_events"]
        )
        checks.append(
            (
                f">= {THROUGHPUT_TARGET:.0f} verified, durably stored events/s",
                throughput["ok_per_second"] >= THROUGHPUT_TARGET and all_stored,
                f"{throughput['ok_per_second']:.0f}/s",
            )
        )
    if steady is not None:
        print(
            f"steady {steady['target_rate']:.0f}/s: achieved {steady['ok_per_second']:.0f}/s, "
            f"{steady['ok']} of {steady['requests']} answered 200 (statuses {steady['statuses']}); "
            f"latency p50 {steady['p50_ms']:.1f} ms, p95 {steady['p95_ms']:.1f} ms, "
            f"p99 {steady['p99_ms']:.1f} ms, max {steady['max_ms']:.1f} ms"
        )
        checks.append(
            (
                f"p99 <= {P99_TARGET_MS:.0f} ms at a steady {args.rate:.0f} events/s",
                steady["p99_ms"] <= P99_TARGET_MS and steady["ok"] == steady["requests"],
                f"p99 {steady['p99_ms']:.1f} ms",
            )
        )
    return verdict(checks)


if __name__ == "__main__":
    raise SystemExit(main())
