"""Two tenants on one Stripe sandbox limited to 25 requests/s per account (issue 13, item 2):
while workspace A's "Generate all" runs 1,000 invoices at its own 25 requests/s, workspace B
generates one invoice at a time ("Generate" for one buyer), 20 times spread over A's run. Real
``python scheduler.py`` processes in sandbox mode, PostgreSQL with fsync and synchronous_commit
on, the sandbox in its own process (as bench/bench_invoice_generation.py).

    B's latency = from the commit of B's "Generate" to its invoice job's completion (the
                  invoice created, finalized and sent in Stripe)
    A's ideal   = Stripe requests A's account made / 25 per second
    A's elapsed = from the commit of A's "Generate all" to A's last invoice job's completion

Targets: B's p95 latency <= 2 s; A's elapsed <= 1.15 x A's ideal; every invoice of both Sent,
none dead.

    .venv/bin/python bench/bench_fairness.py
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    CpuMeter,
    conditions,
    database,
    log,
    print_conditions,
    product_env,
    started,
    started_schedulers,
    verdict,
)
from bench_invoice_generation import wait_http
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

# Loads every domain's jobs.py: generate_all enqueues invoice jobs, a kind declared there.
from backend import jobs  # noqa: F401
from backend.invoicing import service as invoicing
from backend.platform.actors import Actor
from models import Role
from tests.support.hub_env import connect_stripe
from tests.support.pgserver import free_port
from tests.support.shows import make_show

RATE = 25.0  # Stripe's test mode: requests per second per account
RATIO_TARGET = 1.15
B_TARGET_SECONDS = 2.0
BUYERS_A = 1_000
TRIES_B = 20


def invoice_jobs(engine: Engine, workspace_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        by_status = dict(
            conn.execute(
                text(
                    "SELECT status, count(*) FROM outbox_jobs WHERE kind = 'stripe.create_invoice'"
                    " AND workspace_id = :w GROUP BY status"
                ),
                {"w": workspace_id},
            ).all()
        )
        last = conn.execute(
            text(
                "SELECT extract(epoch FROM max(finished_at)) FROM outbox_jobs "
                "WHERE kind = 'stripe.create_invoice' AND workspace_id = :w"
            ),
            {"w": workspace_id},
        ).scalar()
        sent = conn.execute(
            text(
                "SELECT count(*) FROM invoices WHERE workspace_id = :w AND status = 'sent' "
                "AND external_id IS NOT NULL"
            ),
            {"w": workspace_id},
        ).scalar()
    return {
        "jobs": {str(k): int(v) for k, v in by_status.items()},
        "last_done": float(last) if last is not None else None,
        "sent": int(sent or 0),
    }


def job_done_at(engine: Engine, workspace_id: int, platform_user_id: str) -> float | None:
    """When B's invoice job for this buyer finished (epoch seconds), or None while it runs."""
    with engine.connect() as conn:
        done = conn.execute(
            text(
                "SELECT extract(epoch FROM j.finished_at) FROM outbox_jobs j "
                "JOIN invoices i ON j.idempotency_key = 'invoice:' || i.id "
                "WHERE i.workspace_id = :w AND i.buyer_platform_id = :p AND j.status = 'done'"
            ),
            {"w": workspace_id, "p": platform_user_id},
        ).scalar()
    return float(done) if done is not None else None


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--buyers", type=int, default=BUYERS_A, help="A's show")
    parser.add_argument("--tries", type=int, default=TRIES_B, help="B's single invoices")
    parser.add_argument("--rate", type=float, default=RATE, help="the sandbox's limit, req/s")
    parser.add_argument("--schedulers", type=int, default=1, help="scheduler processes")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()

    with database(durable=True) as db:
        sandbox_port = free_port()
        env = product_env(
            db.url,
            HUB_PROVIDER_MODE="sandbox",
            HUB_SANDBOX_PORT=str(sandbox_port),
            HUB_SANDBOX_STATE_FILE="",
        )
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        with contextlib.ExitStack() as stack:
            import httpx

            sandbox = stack.enter_context(
                started("sandbox", [PYTHON, "-m", "backend.sandbox"], env)
            )
            wait_http(f"{sandbox_url}/_sandbox/healthz", sandbox)
            accounts = {
                name: httpx.post(
                    f"{sandbox_url}/stripe/_sandbox/accounts", json={"name": f"Shop {name}"}
                ).json()
                for name in ("A", "B")
            }
            ws_a = connect_stripe(db.engine, secret_key=accounts["A"]["secret_key"], slug="a")
            ws_b = connect_stripe(db.engine, secret_key=accounts["B"]["secret_key"], slug="b")
            log(f"seeding A's show of {args.buyers} buyers and B's of {args.tries}")
            show_a = make_show(
                db.engine, workspace_id=ws_a, buyers=args.buyers, claims_per_buyer=20, items=100
            )
            show_b = make_show(
                db.engine, workspace_id=ws_b, buyers=args.tries, claims_per_buyer=20, items=100
            )
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
            schedulers = started_schedulers(stack, args.schedulers, env)
            httpx.post(
                f"{sandbox_url}/_sandbox/switches", json={"stripe": {"rate_limit": args.rate}}
            ).raise_for_status()
            time.sleep(1.5)
            httpx.delete(f"{sandbox_url}/_sandbox/requests").raise_for_status()
            meter = CpuMeter(db, [sandbox.popen.pid, *(s.popen.pid for s in schedulers)])
            meter.start()
            log(f"A: Generate all ({args.buyers} invoices)")
            with Session(db.engine) as session:
                owner_a = Actor(operator_id=1, workspace_id=ws_a, role=Role.OWNER)
                queued = invoicing.generate_all(session, actor=owner_a, show_id=show_a.id)
                session.commit()
            generated_at = time.time()
            # B's tries spread over the first two thirds of A's run (about 5.5 requests an
            # invoice at 25/s), the first once A's queue is full and its bucket in debt.
            spacing = max(1.0, args.buyers * 5.0 / args.rate / args.tries / 1.5)
            latencies: list[float] = []
            owner_b = Actor(operator_id=2, workspace_id=ws_b, role=Role.OWNER)
            time.sleep(3.0)
            for index, buyer in enumerate(show_b.buyers):
                with Session(db.engine) as session:
                    invoicing.generate_one(
                        session, actor=owner_b, show_id=show_b.id, platform_user_id=buyer
                    )
                    session.commit()
                asked = time.time()
                deadline = time.monotonic() + 60
                done = None
                while done is None and time.monotonic() < deadline:
                    time.sleep(0.02)
                    done = job_done_at(db.engine, ws_b, buyer)
                latency = (done - asked) if done is not None else float("inf")
                latencies.append(latency)
                a_now = invoice_jobs(db.engine, ws_a)["jobs"]
                log(f"B try {index + 1}: {latency:.2f} s (A's jobs {a_now})")
                time.sleep(max(0.0, asked + spacing - time.time()))
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                facts_a = invoice_jobs(db.engine, ws_a)
                if facts_a["jobs"].get("done", 0) + facts_a["jobs"].get("dead", 0) >= queued:
                    break
                time.sleep(0.5)
            cpu = meter.stop()
            answered = httpx.get(f"{sandbox_url}/_sandbox/requests").json().get("stripe", {})
            facts_a = invoice_jobs(db.engine, ws_a)
            facts_b = invoice_jobs(db.engine, ws_b)
            for scheduler in schedulers:
                scheduler.stop()
            facts = conditions(
                db,
                sandbox="python -m backend.sandbox (one process, state in memory), Stripe rate "
                f"limit switch {args.rate:g} requests/s per account (token bucket of 1 s)",
                schedulers=f"{args.schedulers} x python scheduler.py in sandbox mode (default "
                "outbox settings)",
                workload=f"A: Generate all, {args.buyers} buyers x 20 claims; B: {args.tries} x "
                f"Generate for one buyer, one every {spacing:.1f} s from 3 s into A's run",
                cpu_during_run=cpu,
            )

    by_account = answered.get("by_account", {})
    requests_a = int(by_account.get(accounts["A"]["account"], 0))
    requests_b = int(by_account.get(accounts["B"]["account"], 0))
    last_done = facts_a["last_done"]
    elapsed = (last_done - generated_at) if last_done is not None else float("nan")
    ideal = requests_a / args.rate
    ratio = elapsed / ideal if ideal > 0 else float("inf")
    b_p95 = p95(latencies)

    print()
    print("== fairness: B's single invoices during A's 1,000 (bench/bench_fairness.py)")
    print_conditions(facts)
    print(
        f"Stripe requests answered: A {requests_a}, B {requests_b}; by status "
        f"{answered.get('by_status', {})}; 429s {answered.get('rate_limited', 0)}"
    )
    print(
        f"B's latency over {len(latencies)} tries: median {statistics.median(latencies):.2f} s, "
        f"p95 {b_p95:.2f} s, max {max(latencies):.2f} s"
    )
    print(
        f"A: elapsed {elapsed:.1f} s; ideal at {args.rate:g}/s {ideal:.1f} s; ratio {ratio:.3f}; "
        f"jobs {facts_a['jobs']}, {facts_a['sent']} sent; B: jobs {facts_b['jobs']}, "
        f"{facts_b['sent']} sent"
    )
    return verdict(
        [
            (
                f"B's p95 <= {B_TARGET_SECONDS:g} s",
                b_p95 <= B_TARGET_SECONDS,
                f"p95 {b_p95:.2f} s over {len(latencies)} tries",
            ),
            (
                f"A's elapsed <= {RATIO_TARGET} x ideal",
                ratio <= RATIO_TARGET,
                f"{elapsed:.1f} s for {requests_a} requests (ideal {ideal:.1f} s): {ratio:.3f}",
            ),
            (
                "every invoice Sent, none dead",
                facts_a["sent"] == queued
                and facts_b["sent"] == args.tries
                and "dead" not in facts_a["jobs"]
                and "dead" not in facts_b["jobs"],
                f"A {facts_a['sent']} of {queued}, B {facts_b['sent']} of {args.tries}",
            ),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
