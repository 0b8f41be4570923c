"""Webhook to effect: signed Stripe ``invoice.paid`` events sent at a steady rate to the sidecar,
stored, picked up by a real ``python scheduler.py`` (its outbox drainer, woken by NOTIFY) and
applied: the invoice they pay becomes paid. PostgreSQL with fsync and synchronous_commit on,
and ``track_commit_timestamp`` so that the effect's commit time is read from the database.

Latency of each event = commit time of the transaction that marked its invoice paid (the
invoice row's ``pg_xact_commit_timestamp(xmin)``) minus the time the client sent it.

Targets (issue 4): p50 <= 250 ms and p95 <= 1 s at 200 events/s.

    .venv/bin/python bench/bench_e2e.py
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
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
    started_schedulers,
    verdict,
    wait_ready,
)
from loadgen import invoice_id, percentile
from sqlalchemy import Engine, text

from tests.support.pgserver import free_port

RATE = 200.0
P50_TARGET_MS = 250.0
P95_TARGET_MS = 1000.0
INVOICE_PREFIX = "e"
BUYERS = 200


def seed_invoices(engine: Engine, workspace_id: int, count: int) -> None:
    """``count`` sent invoices (in_e…, the ids the load generator's events pay), spread over
    BUYERS buyers, so that applying an event also records the buyer's engagement."""
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO buyers (workspace_id, platform_user_id, handle, created_at)
                SELECT :ws, 'fb_' || n, 'buyer' || n, now() FROM generate_series(0, :b - 1) n
                """
            ),
            {"ws": workspace_id, "b": BUYERS},
        )
        conn.execute(
            text(
                """
                INSERT INTO invoices (workspace_id, provider, external_id, buyer_handle,
                    buyer_platform_id, status, amount_cents, currency, line_items, sent_at,
                    created_at, updated_at)
                SELECT :ws, 'stripe', ids.id, 'buyer' || (n % :b), 'fb_' || (n % :b), 'sent',
                       1000, 'usd', '[]'::jsonb, now(), now(), now()
                FROM unnest(CAST(:ids AS TEXT[])) WITH ORDINALITY AS ids(id, n)
                """
            ),
            {
                "ws": workspace_id,
                "b": BUYERS,
                "ids": [invoice_id(INVOICE_PREFIX, seq) for seq in range(count)],
            },
        )


def effects(engine: Engine, prefix: str) -> dict[str, tuple[float | None, float | None, str]]:
    """event id -> (commit time of the transaction that made its invoice paid (None while
    unpaid), event's handled_at, invoice status)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT e.external_id,
                       CASE WHEN i.status = 'paid'
                            THEN extract(epoch FROM pg_xact_commit_timestamp(i.xmin)) END,
                       extract(epoch FROM e.handled_at),
                       i.status
                FROM inbound_events e
                JOIN invoices i ON i.external_id = e.payload -> 'data' -> 'object' ->> 'id'
                WHERE e.external_id LIKE :prefix
                """
            ),
            {"prefix": f"evt_{prefix}%"},
        ).all()
    return {
        row[0]: (
            float(row[1]) if row[1] is not None else None,
            float(row[2]) if row[2] is not None else None,
            str(row[3]),
        )
        for row in rows
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=SIDECAR_WORKERS)
    parser.add_argument(
        "--schedulers",
        type=int,
        default=1,
        help="scheduler processes (the outbox is claimed with SKIP LOCKED: any number may run)",
    )
    args = parser.parse_args()

    total = int(args.rate * (args.duration + args.warmup))
    with database(durable=True, extra=("track_commit_timestamp=on",)) as db:
        workspace_id = seed_stripe_workspace(db.engine)
        seed_invoices(db.engine, workspace_id, total + 100)
        port = free_port()
        env = product_env(db.url)
        with contextlib.ExitStack() as stack:
            sidecar = stack.enter_context(
                started("sidecar", sidecar_command(port, args.workers), env)
            )
            schedulers = started_schedulers(stack, args.schedulers, env)
            wait_ready(port, sidecar)
            log(f"sidecar and scheduler ready; {args.rate:.0f} events/s for {args.duration}s")
            meter = CpuMeter(
                db,
                {
                    sidecar.popen.pid: "sidecar",
                    **{s.popen.pid: f"scheduler-{n}" for n, s in enumerate(schedulers)},
                },
            )
            meter.start()
            load = run_load(
                port,
                processes=1,
                mode="rate",
                rate=args.rate,
                duration=args.duration + args.warmup,
                warmup=args.warmup,
                connections=64,
                prefix="e",
                invoice_prefix=INVOICE_PREFIX,
                sends=True,
            )
            sent = {row[0]: row[1] for row in load["sends"] if row[2] == 200}
            deadline = time.monotonic() + 60
            applied = effects(db.engine, "e")
            while time.monotonic() < deadline and any(
                applied.get(event, (None,))[0] is None for event in sent
            ):
                time.sleep(0.5)
                applied = effects(db.engine, "e")
            cpu = meter.stop()
            facts = conditions(
                db,
                sidecar=f"uvicorn backend.api.app:app, {args.workers} workers, uvloop, httptools",
                scheduler=f"{args.schedulers} x python scheduler.py (outbox drainer: "
                "HUB_OUTBOX_THREADS threads, woken by LISTEN/NOTIFY)",
                load=f"1 generator process, {args.rate:.0f} events/s on schedule (open loop)",
                event_bytes=load.get("event_bytes"),
                events_measured=len(sent),
                phase_seconds=f"{args.duration} (+{args.warmup} warm-up, not counted)",
                track_commit_timestamp=db.setting("track_commit_timestamp"),
                cpu_during_run=cpu,
            )

    latencies = []
    handled_latencies = []
    missing = 0
    for event, sent_at in sent.items():
        committed, handled, status = applied.get(event, (None, None, "?"))
        if committed is None or status != "paid":
            missing += 1
            continue
        latencies.append(committed - sent_at)
        if handled is not None:
            handled_latencies.append(handled - sent_at)
    latencies.sort()
    handled_latencies.sort()
    p50 = percentile(latencies, 50) * 1000
    p95 = percentile(latencies, 95) * 1000
    print()
    print("== webhook to effect (bench/bench_e2e.py)")
    print_conditions(facts)
    print(
        f"ingest at {load['target_rate']:.0f}/s: {load['ok']} of {load['requests']} answered 200 "
        f"(statuses {load['statuses']}); response p50 {load['p50_ms']:.1f} ms, "
        f"p99 {load['p99_ms']:.1f} ms"
    )
    print(
        f"send -> invoice paid (commit): p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.0f} ms, "
        f"max {(latencies[-1] * 1000) if latencies else float('nan'):.0f} ms over "
        f"{len(latencies)} events; {missing} not applied"
    )
    print(
        f"send -> inbound_events.handled_at: p50 {percentile(handled_latencies, 50) * 1000:.0f} "
        f"ms, p95 {percentile(handled_latencies, 95) * 1000:.0f} ms"
    )
    complete = missing == 0 and load["ok"] == load["requests"] and len(latencies) > 0
    return verdict(
        [
            (
                f"p50 <= {P50_TARGET_MS:.0f} ms at {args.rate:.0f}/s",
                p50 <= P50_TARGET_MS,
                f"{p50:.0f} ms",
            ),
            (
                f"p95 <= {P95_TARGET_MS:.0f} ms at {args.rate:.0f}/s",
                p95 <= P95_TARGET_MS,
                f"{p95:.0f} ms",
            ),
            ("every event answered 200 and applied", complete, f"{missing} not applied"),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
