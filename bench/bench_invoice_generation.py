"""Generating a big show's invoices against the Stripe sandbox limited to Stripe's test-mode rate:
"Generate all" for 1,000 buyers (20 claims each on 100 items, every other buyer with an email),
run by real ``python scheduler.py`` processes (their outbox drainers) in sandbox mode, until every
invoice is Sent. PostgreSQL with fsync and synchronous_commit on.

The sandbox (``python -m backend.sandbox``, its own process, state in memory) answers Stripe's
429 ``rate_limit`` error to any key sending more than 25 requests in a second (its token bucket
switch); it counts the API requests it answered (GET /_sandbox/requests). The product paces
itself with its Stripe account's token bucket (backend/platform/circuits.py).

    ideal   = Stripe requests answered / 25 per second
    elapsed = from the commit of "Generate all" to the last invoice job's completion

Targets (issue 6): elapsed <= 1.15 x ideal, every invoice Sent and in Stripe once, no job
failed because of a 429 (none dead, none retried after a 429; the sandbox's 429 count is
printed too).

    .venv/bin/python bench/bench_invoice_generation.py
"""

from __future__ import annotations

import argparse
import contextlib
import re
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
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

# Loads every domain's jobs.py: generate_all enqueues invoice jobs, a kind declared there.
from backend import jobs  # noqa: F401
from backend.config import Settings
from backend.invoicing import service as invoicing
from backend.platform import circuits
from backend.platform.actors import Actor
from models import Role
from tests.support.hub_env import connect_stripe
from tests.support.pgserver import free_port
from tests.support.shows import make_show

RATE = 25.0  # Stripe's test mode: requests per second per account
RATIO_TARGET = 1.15
BUYERS = 1_000


def wait_http(url: str, process: Any, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited:\n{process.output()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{process.name} not ready after {timeout}s:\n{process.output()[-4000:]}")


def progress(engine: Engine, show_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, count(*) FROM invoices WHERE show_id = :s GROUP BY status"),
            {"s": show_id},
        ).all()
    return {str(status): int(n) for status, n in rows}


def job_facts(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        by_status = dict(
            conn.execute(
                text(
                    "SELECT status, count(*) FROM outbox_jobs "
                    "WHERE kind = 'stripe.create_invoice' GROUP BY status"
                )
            ).all()
        )
        first, last, max_attempts, rerun = conn.execute(
            text(
                "SELECT extract(epoch FROM min(finished_at)), extract(epoch FROM max(finished_at)),"
                " max(attempts), count(*) FILTER (WHERE attempts > 1) FROM outbox_jobs "
                "WHERE kind = 'stripe.create_invoice'"
            )
        ).one()
        errors = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT last_error FROM outbox_jobs WHERE kind = 'stripe.create_invoice' "
                    "AND last_error IS NOT NULL"
                )
            )
        ]
        invoices = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT external_id), "
                "count(*) FILTER (WHERE status = 'sent' AND external_id IS NOT NULL), "
                "count(*) FILTER (WHERE link_channel = 'email') FROM invoices"
            )
        ).one()
    return {
        "jobs": {str(k): int(v) for k, v in by_status.items()},
        "first_done": float(first) if first is not None else None,
        "last_done": float(last) if last is not None else None,
        "max_attempts": int(max_attempts or 0),
        "jobs_run_again": int(rerun or 0),
        "errors": errors,
        "invoices": tuple(int(x) for x in invoices),
    }


def stripe_side(sandbox_url: str, key: str, show_id: int) -> tuple[int, int, int]:
    """(invoices of the show in Stripe, distinct hub invoice ids among them, customers), read
    through Stripe's lists (the sandbox's search answers one page only)."""
    import stripe

    client = stripe.StripeClient(
        key, base_addresses={"api": f"{sandbox_url}/stripe"}, max_network_retries=0
    )
    metadata = [
        invoice.metadata.to_dict() if invoice.metadata else {}
        for invoice in client.v1.invoices.list({"limit": 100}).auto_paging_iter()
    ]
    invoices = [m for m in metadata if m.get("hub_show_id") == str(show_id)]
    hub_ids = {m.get("hub_invoice_id") for m in invoices}
    customers = sum(1 for _ in client.v1.customers.list({"limit": 100}).auto_paging_iter())
    return len(invoices), len(hub_ids), customers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--buyers", type=int, default=BUYERS)
    parser.add_argument("--rate", type=float, default=RATE, help="the sandbox's limit, req/s")
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="seconds the sandbox adds to each Stripe answer (a provider far away)",
    )
    parser.add_argument("--schedulers", type=int, default=1, help="scheduler processes")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="HUB_X=VALUE",
        help="a setting for the scheduler processes (repeatable)",
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)

    with database(durable=True) as db:
        sandbox_port = free_port()
        env = product_env(
            db.url,
            HUB_PROVIDER_MODE="sandbox",
            HUB_SANDBOX_PORT=str(sandbox_port),
            HUB_SANDBOX_STATE_FILE="",
            **extra,
        )
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        with contextlib.ExitStack() as stack:
            import httpx

            sandbox = stack.enter_context(
                started("sandbox", [PYTHON, "-m", "backend.sandbox"], env)
            )
            wait_http(f"{sandbox_url}/_sandbox/healthz", sandbox)
            account = httpx.post(
                f"{sandbox_url}/stripe/_sandbox/accounts", json={"name": "Bench Boutique"}
            ).json()
            workspace_id = connect_stripe(db.engine, secret_key=account["secret_key"], slug="bench")
            log(f"seeding a show of {args.buyers} buyers x 20 claims on 100 items")
            show = make_show(
                db.engine,
                workspace_id=workspace_id,
                buyers=args.buyers,
                claims_per_buyer=20,
                items=100,
                title="The big one",
            )
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
            schedulers = started_schedulers(stack, args.schedulers, env)
            httpx.post(
                f"{sandbox_url}/_sandbox/switches",
                json={"stripe": {"rate_limit": args.rate, "latency_seconds": args.latency}},
            ).raise_for_status()
            time.sleep(1.5)  # the sandbox's bucket full again after the set-up's requests
            httpx.delete(f"{sandbox_url}/_sandbox/requests").raise_for_status()
            log(f"{args.schedulers} scheduler(s) ready; Generate all ({args.buyers} invoices)")
            meter = CpuMeter(db, [sandbox.popen.pid, *(s.popen.pid for s in schedulers)])
            meter.start()
            with Session(db.engine) as session:
                owner = Actor(operator_id=1, workspace_id=workspace_id, role=Role.OWNER)
                queued = invoicing.generate_all(session, actor=owner, show_id=show.id)
                session.commit()
            generated_at = time.time()
            deadline = time.monotonic() + args.timeout
            counts = progress(db.engine, show.id)
            last_report = time.monotonic()
            while time.monotonic() < deadline:
                facts_now = job_facts(db.engine)
                jobs = facts_now["jobs"]
                if jobs.get("done", 0) + jobs.get("dead", 0) >= queued:
                    break
                if time.monotonic() - last_report > 20:
                    last_report = time.monotonic()
                    counts = progress(db.engine, show.id)
                    log(f"invoices {counts}, jobs {jobs}")
                time.sleep(0.5)
            cpu = meter.stop()
            answered = httpx.get(f"{sandbox_url}/_sandbox/requests").json().get("stripe", {})
            httpx.post(
                f"{sandbox_url}/_sandbox/switches", json={"stripe": {"rate_limit": None}}
            ).raise_for_status()
            counts = progress(db.engine, show.id)
            jobs_after = job_facts(db.engine)
            in_stripe, distinct_in_stripe, customers = stripe_side(
                sandbox_url, account["secret_key"], show.id
            )
            outputs = [s.output() for s in schedulers]
            for scheduler in schedulers:
                scheduler.stop()
            threads = extra.get(
                "HUB_OUTBOX_THREADS", str(Settings.model_fields["outbox_threads"].default)
            )
            batch = extra.get(
                "HUB_OUTBOX_BATCH", str(Settings.model_fields["outbox_batch"].default)
            )
            provider_threads = extra.get(
                "HUB_OUTBOX_PROVIDER_THREADS",
                str(Settings.model_fields["outbox_provider_threads"].default),
            )
            facts = conditions(
                db,
                sandbox="python -m backend.sandbox (one process, state in memory), Stripe rate "
                f"limit switch {args.rate:g} requests/s per key (token bucket of 1 s), "
                f"{args.latency * 1000:g} ms added to each answer",
                schedulers=f"{args.schedulers} x python scheduler.py in sandbox mode, "
                f"HUB_OUTBOX_THREADS={threads}, HUB_OUTBOX_BATCH={batch}, "
                f"HUB_OUTBOX_PROVIDER_THREADS={provider_threads}" + (f", {extra}" if extra else ""),
                product_rate_limit=f"circuits.RATE_LIMITS: stripe {circuits.RATE_LIMITS['stripe']}",
                show=f"{args.buyers} buyers x 20 claims on 100 items, every other buyer with an "
                "email (Stripe sends those invoices)",
                cpu_during_run=cpu,
            )

    requests = int(answered.get("requests", 0))
    limited = int(answered.get("rate_limited", 0))
    last_done = jobs_after["last_done"]
    elapsed = (last_done - generated_at) if last_done is not None else float("nan")
    ideal = requests / args.rate
    ratio = elapsed / ideal if ideal > 0 else float("inf")
    failures = [
        line for text_ in outputs for line in text_.splitlines() if "outbox.job_failed" in line
    ]
    rate_failures = [line for line in failures if "RateLimited" in line]
    dead = jobs_after["jobs"].get("dead", 0)
    rate_errors = [e for e in jobs_after["errors"] if re.search(r"rate.?limit|429", e, re.I)]
    n_invoices, distinct_ids, sent, emailed = jobs_after["invoices"]

    print()
    print(
        "== invoice generation against the rate-limited sandbox (bench/bench_invoice_generation.py)"
    )
    print_conditions(facts)
    print(f"queued {queued} invoice jobs; invoices by status {counts}; jobs {jobs_after['jobs']}")
    print(
        f"Stripe requests answered by the sandbox: {requests} ({requests / max(1, queued):.2f} "
        f"an invoice), by status {answered.get('by_status', {})}; 429s: {limited}"
    )
    print(
        f"elapsed {elapsed:.1f} s (Generate all's commit to the last job's completion); ideal at "
        f"{args.rate:g}/s {ideal:.1f} s; ratio {ratio:.3f}; achieved "
        f"{requests / elapsed if elapsed > 0 else 0:.2f} requests/s"
    )
    print(
        f"jobs: {dead} dead, {jobs_after['jobs_run_again']} run more than once (max attempts "
        f"{jobs_after['max_attempts']}); failed runs logged {len(failures)} "
        f"({len(rate_failures)} of them 429s); rate-limit errors left on jobs {len(rate_errors)}"
    )
    print(
        f"invoices: {n_invoices} rows, {sent} sent with a Stripe id, {distinct_ids} distinct "
        f"Stripe ids, {emailed} emailed by Stripe; in Stripe: {in_stripe} invoices of the show "
        f"({distinct_in_stripe} distinct hub ids), {customers} customers"
    )
    for line in failures[:5]:
        print(f"  {line[:300]}")
    all_sent = sent == n_invoices == distinct_ids == in_stripe == distinct_in_stripe == queued
    return verdict(
        [
            (
                f"elapsed <= {RATIO_TARGET} x ideal",
                ratio <= RATIO_TARGET,
                f"{elapsed:.1f} s for {requests} requests (ideal {ideal:.1f} s): {ratio:.3f}",
            ),
            (
                "no job failed because of a 429",
                dead == 0 and not rate_failures and not rate_errors,
                f"{dead} dead, {len(rate_failures)} runs failed on a 429 "
                f"(sandbox answered {limited} 429s)",
            ),
            (
                f"all {queued} invoices Sent, each once in Stripe",
                all_sent and customers == queued,
                f"{sent} sent, {in_stripe} in Stripe, {customers} customers",
            ),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
