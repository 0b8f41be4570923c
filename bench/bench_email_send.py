"""100,000 personalized e-mails end to end (issue 15, the first figure): queued by the product's
bulk path (``backend.email.service.queue_emails``: the tracking rows and their send jobs), sent
by two real ``python scheduler.py`` processes through the SendGrid sandbox (``python -m
backend.sandbox``, its own process), on a fresh PostgreSQL with fsync and synchronous_commit on.

The clock starts before the first row is written and stops when every message is ``sent``.
Then: the sandbox counted exactly as many personalizations accepted as messages (a message
mailed twice would make more; every row ``sent`` means each was in an accepted request, so
equal counts mean each once), each request's X-Message-Id is on the rows it carried, and
every send job is done.

    .venv/bin/python bench/bench_email_send.py [--messages 100000] [--schedulers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    CpuMeter,
    conditions,
    database,
    free_port,
    log,
    print_conditions,
    product_env,
    started,
    started_schedulers,
    verdict,
    wait_http,
)
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from backend import jobs  # noqa: F401 - declares the outbox's job kinds
from backend.connections import credentials
from backend.email import service
from backend.email.service import Recipient
from backend.sandbox.sendgrid import DEMO_API_KEY
from models import Integration, IntegrationStatus, Plan, Workspace

TARGET_SECONDS = 60.0
# Rows per transaction of the queueing: the sends start while the rest is written.
QUEUE_CHUNK = 10_000


def seed(engine: Engine) -> int:
    with Session(engine) as session:
        workspace = Workspace(name="Bench Mail", slug="bench-mail", plan=Plan.PRO)
        session.add(workspace)
        session.flush()
        row = Integration(
            workspace_id=workspace.id,
            provider="sendgrid",
            display_name="SendGrid",
            status=IntegrationStatus.ACTIVE,
            settings={"from_email": "hello@lakeside.example", "from_name": "Lakeside Media"},
        )
        session.add(row)
        session.flush()
        credentials.seal(row, {"api_key": DEMO_API_KEY})
        session.commit()
        return workspace.id


def recipients(start: int, count: int) -> list[Recipient]:
    """Each message its own person: name, amount, due date and payment link differ."""
    return [
        Recipient(
            to_email=f"client{n}@example.org",
            to_name=f"Client {n}",
            subject_type="client",
            subject_id=n,
            context={
                "business_name": "Lakeside Media",
                "recipient_name": f"Client {n}",
                "amount": f"${100 + n % 900}.00",
                "due_date": f"May {1 + n % 28}, 2027",
                "payment_url": f"https://pay.example/i/INV-{n:06d}",
            },
            dedupe_key=f"bench:payment_request:{n}",
        )
        for n in range(start, start + count)
    ]


def statuses(engine: Engine, ws: int) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, count(*) FROM email_messages WHERE workspace_id = :w GROUP BY 1"),
            {"w": ws},
        )
        return {str(status): int(count) for status, count in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--schedulers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    import httpx

    with database(durable=True) as db:
        ws = seed(db.engine)
        sandbox_port = free_port()
        env = product_env(
            db.url,
            HUB_PROVIDER_MODE="sandbox",
            HUB_SANDBOX_PORT=str(sandbox_port),
            HUB_SANDBOX_STATE_FILE="",
            # No sidecar here: the sandbox's processed/delivered events find no receiver
            # (their intake is the second figure, bench/bench_email_events.py).
            HUB_PUBLIC_SIDECAR_URL=f"http://127.0.0.1:{free_port()}",
        )
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        with contextlib.ExitStack() as stack:
            sandbox = stack.enter_context(
                started("sandbox", [PYTHON, "-m", "backend.sandbox"], env)
            )
            wait_http(f"{sandbox_url}/_sandbox/healthz", sandbox, timeout=60)
            schedulers = started_schedulers(stack, args.schedulers, env)
            httpx.delete(f"{sandbox_url}/sendgrid/_sandbox/accepted").raise_for_status()
            meter = CpuMeter(
                db,
                {
                    sandbox.popen.pid: "sandbox",
                    **{s.popen.pid: s.name for s in schedulers},
                },
            )
            meter.start()
            log(f"queueing {args.messages} messages in transactions of {QUEUE_CHUNK}")
            started_at = time.monotonic()
            for start in range(0, args.messages, QUEUE_CHUNK):
                count = min(QUEUE_CHUNK, args.messages - start)
                with Session(db.engine) as session:
                    service.queue_emails(
                        session,
                        workspace_id=ws,
                        purpose="payment_request",
                        recipients=recipients(start, count),
                    )
                    session.commit()
            queued_in = time.monotonic() - started_at
            log(f"queued in {queued_in:.1f} s")
            deadline = started_at + args.timeout
            seen = statuses(db.engine, ws)
            while time.monotonic() < deadline:
                seen = statuses(db.engine, ws)
                if seen.get("sent", 0) >= args.messages or not (
                    seen.get("queued", 0) or seen.get("unknown", 0)
                ):
                    break
                time.sleep(0.1)
            elapsed = time.monotonic() - started_at
            cpu = meter.stop()
            log(f"done in {elapsed:.1f} s: {seen}")
            accepted = httpx.get(f"{sandbox_url}/sendgrid/_sandbox/accepted").json()
            with db.engine.connect() as conn:
                per_request = conn.execute(
                    text(
                        "SELECT count(DISTINCT sendgrid_message_id), "
                        "count(*) FILTER (WHERE sendgrid_message_id IS NULL) "
                        "FROM email_messages WHERE workspace_id = :w"
                    ),
                    {"w": ws},
                ).one()
                jobs = dict(
                    conn.execute(
                        text(
                            "SELECT status, count(*) FROM outbox_jobs "
                            "WHERE kind = 'email.send' GROUP BY 1"
                        )
                    ).all()
                )
            for scheduler in schedulers:
                scheduler.stop()
            facts = conditions(
                db,
                sandbox="python -m backend.sandbox (one process, state in memory)",
                schedulers=f"{args.schedulers} x python scheduler.py in sandbox mode (default "
                "outbox settings)",
                workload=f"{args.messages} payment_request messages, each its own recipient "
                f"and variables, queued by service.queue_emails {QUEUE_CHUNK} a transaction",
                cpu_during_run=cpu,
            )

    sent = seen.get("sent", 0)
    print()
    print("== 100,000 personalized e-mails (bench/bench_email_send.py)")
    print_conditions(facts)
    print(f"queued in {queued_in:.1f} s; all sent {elapsed:.1f} s after the first row")
    print(f"rows by status {seen}; outbox jobs by status {jobs}")
    print(
        f"sandbox accepted {accepted['requests']} requests, {accepted['personalizations']} "
        f"personalizations; rows carry {per_request[0]} distinct X-Message-Ids "
        f"({per_request[1]} rows without one)"
    )
    return verdict(
        [
            (
                f"{args.messages} sent in <= {TARGET_SECONDS:g} s",
                sent == args.messages and elapsed <= TARGET_SECONDS,
                f"{sent} sent in {elapsed:.1f} s ({sent / elapsed:,.0f} messages/s)",
            ),
            (
                "each message accepted by the sandbox exactly once",
                accepted["personalizations"] == args.messages == sent
                and per_request[0] == accepted["requests"]
                and per_request[1] == 0,
                f"{accepted['personalizations']} personalizations in {accepted['requests']} "
                f"requests for {sent} rows sent",
            ),
            (
                "every email.send job done",
                set(jobs) <= {"done"},
                f"{jobs}",
            ),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
