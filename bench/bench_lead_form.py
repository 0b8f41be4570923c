"""The lead form (issue 15, the third figure): ``POST /forms/{workspace}/leads`` on the sidecar
as deployed (uvicorn, two workers) on PostgreSQL with fsync and synchronous_commit on; each
submission stored in the inbox with its job, committed before the answer (202). The jobs are run
afterwards, in this process, as a scheduler would run them: each inquiry captured (a lead, or a
repeat inquiry of one, and its message) and each new lead announced (the alert, the owner's
``new_lead_notification`` and the ``proposal_sent`` e-mail: a published proposal template
matches the service type), and checked: one of each per lead.

The product's rate limit (10 submissions per client address per 10 minutes) is left as it is:
the load comes from many clients, each connection from an address of its own in 127.0.0.0/8,
sending at most ``PER_CLIENT`` submissions before the next client takes over.

1. Maximum: ``--connections`` clients at a time, each sending as soon as answered, for
   ``--seconds``: submissions answered 202 per second.
2. Paced: ``--rate`` submissions/s on a fixed schedule for ``--paced-seconds``; latency from
   each submission's scheduled time (no coordinated omission): p50/p99.

A share ``--repeat`` of submissions reuse an address already sent (a repeat inquiry, often
while the first is in flight). At the end: leads = distinct addresses answered, each lead's
inquiry count = its submissions, one message per submission, one alert per lead.

    .venv/bin/python bench/bench_lead_form.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    SIDECAR_WORKERS,
    CpuMeter,
    conditions,
    database,
    free_port,
    log,
    print_conditions,
    product_env,
    sidecar_command,
    started,
    verdict,
    wait_ready,
)
from loadgen import Connection
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from backend.jobs.runner import Runner
from backend.logging import configure
from models import Membership, Operator, Plan, ProposalTemplate, Role, Workspace

SLUG = "bench-leads"
PER_CLIENT = 10  # the product's limit per client address (backend/api/forms.py RATE_LIMIT)
RATE_TARGET = 500.0
P99_TARGET_MS = 100.0
SERVICE = "recital media"


def seed(engine: Engine) -> int:
    with Session(engine) as session:
        workspace = Workspace(name="Lakeside Media", slug=SLUG, plan=Plan.PRO)
        session.add(workspace)
        session.flush()
        owner = Operator(email="owner@lakeside.example", name="Olive Owner", password_hash="x")  # noqa: S106 - never logs in
        session.add(owner)
        session.flush()
        session.add(Membership(operator_id=owner.id, workspace_id=workspace.id, role=Role.OWNER))
        session.add(
            ProposalTemplate(
                workspace_id=workspace.id,
                title="Recital media package",
                service_type=SERVICE,
                body="Two cameras, edited film within two weeks.",
                published=True,
            )
        )
        session.commit()
        return workspace.id


class Load:
    """Addresses to submit and what was answered."""

    def __init__(self, port: int, repeat: float, seed_: int) -> None:
        self.port = port
        self.repeat = repeat
        self.random = random.Random(seed_)
        self.sent: list[str] = []
        self.next_email = 0
        self.next_client = 0
        self.answered: dict[int, int] = {}
        self.accepted: dict[str, int] = {}  # email -> submissions answered 202

    def email(self) -> str:
        if self.sent and self.random.random() < self.repeat:
            return self.random.choice(self.sent)
        self.next_email += 1
        address = f"guest{self.next_email}@example.org"
        self.sent.append(address)
        return address

    def request(self, email: str) -> bytes:
        body = json.dumps(
            {
                "name": f"Guest {email.split('@')[0][5:]}",
                "email": email,
                "phone": "+1 555 0100",
                "service_type": SERVICE,
                "event_date": "2027-05-01",
                "message": "Hello, we would like a film of our recital in May.",
                "marketing_consent": True,
            }
        ).encode()
        head = (
            f"POST /forms/{SLUG}/leads HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nAccept: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def client_address(self) -> str:
        n = self.next_client
        self.next_client += 1
        return f"127.{1 + n // 62500}.{(n // 250) % 250 + 1}.{n % 250 + 1}"

    async def connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            Connection, "127.0.0.1", self.port, local_addr=(self.client_address(), 0)
        )
        return protocol

    def record(self, email: str, status: int) -> None:
        self.answered[status] = self.answered.get(status, 0) + 1
        if status == 202:
            self.accepted[email] = self.accepted.get(email, 0) + 1


class Client:
    """A connection from its own address, replaced after ``PER_CLIENT`` submissions."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.conn: Connection | None = None
        self.used = 0

    async def submit(self, scheduled: float) -> float:
        if self.conn is None or self.used >= PER_CLIENT or self.conn.lost.done():
            if self.conn is not None and self.conn.transport is not None:
                self.conn.transport.close()
            self.conn = await self.load.connect()
            self.used = 0
        self.used += 1
        email = self.load.email()
        try:
            status = await self.conn.call(self.load.request(email))
        except (ConnectionError, RuntimeError):
            status = 0
            self.conn = None
        self.load.record(email, status)
        return time.perf_counter() - scheduled

    def close(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.close()


async def closed(load: Load, connections: int, seconds: float) -> dict[str, Any]:
    deadline = time.perf_counter() + seconds
    done = 0
    before = sum(load.accepted.values())

    async def run() -> None:
        nonlocal done
        client = Client(load)
        while time.perf_counter() < deadline:
            await client.submit(time.perf_counter())
            done += 1
        client.close()

    started_at = time.perf_counter()
    await asyncio.gather(*(run() for _ in range(connections)))
    elapsed = time.perf_counter() - started_at
    accepted = sum(load.accepted.values()) - before
    return {"seconds": elapsed, "accepted": accepted, "per_second": accepted / elapsed}


async def paced(load: Load, rate: float, seconds: float) -> dict[str, Any]:
    idle: list[Client] = [Client(load) for _ in range(16)]
    latencies: list[float] = []
    total = int(rate * seconds)
    start = time.perf_counter() + 0.1
    tasks: set[asyncio.Task[None]] = set()
    freed = asyncio.Event()

    async def one(client: Client, scheduled: float) -> None:
        latencies.append(await client.submit(scheduled))
        idle.append(client)
        freed.set()

    for index in range(total):
        scheduled = start + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        while not idle:
            if len(tasks) < 256:
                idle.append(Client(load))
            else:
                freed.clear()
                await freed.wait()
        task = asyncio.create_task(one(idle.pop(), scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    for client in idle:
        client.close()
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "submissions": total,
        "answered": len(latencies),
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "max": ordered[-1] * 1000,
    }


def capture_and_announce(engine: Engine) -> dict[str, Any]:
    """Run the jobs the form queued: each stored inquiry's capture, then each new lead's
    ``lead.announce`` (local jobs only: the e-mails' sends are not part of this figure), as a
    scheduler's runner does; their time and CPU here."""
    runner = Runner(engine, "bench-announce", provider_jobs=False)
    started_at, cpu = time.perf_counter(), time.process_time()
    jobs, errors = 0, 0
    while True:
        report = runner.run_once()
        jobs += report.claimed
        errors += len(report.errors)
        if not report.claimed:
            break
    elapsed, used = time.perf_counter() - started_at, time.process_time() - cpu
    return {
        "jobs": jobs,
        "errors": errors,
        "seconds": elapsed,
        "cpu_ms_per_job": used * 1000 / jobs if jobs else 0.0,
    }


def check(engine: Engine, ws: int, load: Load) -> dict[str, Any]:
    with engine.connect() as conn:
        leads = dict(
            conn.execute(
                text("SELECT email, inquiries FROM leads WHERE workspace_id = :w"), {"w": ws}
            ).all()
        )
        messages = conn.execute(
            text("SELECT count(*) FROM lead_messages WHERE workspace_id = :w"), {"w": ws}
        ).scalar_one()
        alerts = conn.execute(
            text("SELECT count(*) FROM alerts WHERE workspace_id = :w"), {"w": ws}
        ).scalar_one()
        emails = dict(
            conn.execute(
                text(
                    "SELECT purpose, count(*) FROM email_messages WHERE workspace_id = :w "
                    "GROUP BY 1"
                ),
                {"w": ws},
            ).all()
        )
    wrong = {e: (n, leads.get(e)) for e, n in load.accepted.items() if leads.get(e) != n}
    announced = alerts == emails.get("new_lead_notification") == emails.get("proposal_sent")
    return {
        "leads": len(leads),
        "distinct_accepted": len(load.accepted),
        "inquiries": sum(leads.values()),
        "accepted": sum(load.accepted.values()),
        "messages": messages,
        "alerts": alerts,
        "emails": emails,
        "wrong": dict(list(wrong.items())[:5]),
        "wrong_count": len(wrong),
        "exact": not wrong
        and len(leads) == len(load.accepted)
        and sum(leads.values()) == sum(load.accepted.values()) == messages,
        "announced": announced and alerts == len(leads),
    }


def _cpu_ms(summary: dict[str, Any], submissions: int) -> dict[str, float]:
    """CPU milliseconds a submission of the sidecar's processes and of PostgreSQL: what the
    machine's other load does not change much, unlike the rates."""
    count = max(1, submissions)
    return {
        "sidecar": summary["servers"] * summary["seconds"] * 1000 / count,
        "postgres": summary["postgres"] * summary["seconds"] * 1000 / count,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="maximum phase")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--paced-seconds", type=float, default=30.0)
    parser.add_argument("--repeat", type=float, default=0.3, help="share of repeat addresses")
    parser.add_argument("--workers", type=int, default=SIDECAR_WORKERS)
    args = parser.parse_args()
    configure("WARNING")  # the announcements' own lines (one an alert) are not the figure
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    with database(durable=True) as db:
        ws = seed(db.engine)
        port = free_port()
        env = product_env(db.url)
        with started("sidecar", sidecar_command(port, args.workers), env) as sidecar:
            wait_ready(port, sidecar)
            load = Load(port, args.repeat, 15)
            asyncio.run(closed(load, 4, 1.0))  # warm both workers
            meter = CpuMeter(db, {sidecar.popen.pid: "sidecar"})
            meter.start()
            log(f"maximum: {args.connections} clients at a time, {args.seconds:g} s")
            maximum = asyncio.run(closed(load, args.connections, args.seconds))
            max_cpu = meter.stop()
            max_ms = _cpu_ms(meter.summary, maximum["accepted"])
            log(f"maximum: {maximum['per_second']:.0f}/s; {max_cpu}")
            meter.start()
            log(f"paced: {args.rate:g}/s for {args.paced_seconds:g} s")
            steady = asyncio.run(paced(load, args.rate, args.paced_seconds))
            paced_cpu = meter.stop()
            paced_ms = _cpu_ms(meter.summary, steady["answered"])
            log(f"paced: p50 {steady['p50']:.1f} ms p99 {steady['p99']:.1f} ms; {paced_cpu}")
            log("running the jobs: the inquiries' capture, the new leads' announcements")
            announced = capture_and_announce(db.engine)
            log(f"jobs: {announced}")
            found = check(db.engine, ws, load)
            facts = conditions(
                db,
                sidecar=" ".join(sidecar_command(port, args.workers)[1:]),
                load="this process (asyncio, uvloop), HTTP/1.1 keep-alive, each connection "
                f"from its own 127.x.y.z address for at most {PER_CLIENT} submissions",
                repeat_share=args.repeat,
                cpu_maximum=max_cpu,
                cpu_paced=paced_cpu,
            )

    print()
    print("== lead form (bench/bench_lead_form.py)")
    print_conditions(facts)
    print(f"answers by status: {load.answered}")
    print(
        f"maximum: {maximum['accepted']} submissions in {maximum['seconds']:.1f} s: "
        f"{maximum['per_second']:.0f}/s"
    )
    print(
        f"paced {args.rate:g}/s: {steady['answered']} of {steady['submissions']} answered; p50 "
        f"{steady['p50']:.1f} ms, p95 {steady['p95']:.1f} ms, p99 {steady['p99']:.1f} ms, max "
        f"{steady['max']:.1f} ms"
    )
    print(
        f"jobs run afterwards in one process (each inquiry's capture, each new lead's "
        f"announcement): {announced['jobs']} jobs in "
        f"{announced['seconds']:.1f} s, {announced['cpu_ms_per_job']:.1f} ms of CPU a job, "
        f"{announced['errors']} errors"
    )
    print(
        f"sidecar CPU a submission: {max_ms['sidecar']:.1f} ms (maximum), "
        f"{paced_ms['sidecar']:.1f} ms (paced); PostgreSQL {max_ms['postgres']:.1f} / "
        f"{paced_ms['postgres']:.1f} ms"
    )
    print(f"dedupe: {found}")
    return verdict(
        [
            (
                f">= {RATE_TARGET:g} submissions/s",
                maximum["per_second"] >= RATE_TARGET,
                f"{maximum['per_second']:.0f}/s",
            ),
            (
                f"p99 <= {P99_TARGET_MS:g} ms at {args.rate:g}/s",
                steady["p99"] <= P99_TARGET_MS and steady["answered"] == steady["submissions"],
                f"p99 {steady['p99']:.1f} ms",
            ),
            (
                "each new lead announced once (alert, notification, proposal)",
                bool(found["announced"]) and announced["errors"] == 0,
                f"{found['alerts']} alerts, {found['emails']} for {found['leads']} leads",
            ),
            (
                "dedupe exact",
                bool(found["exact"]) and set(load.answered) == {202},
                f"{found['leads']} leads for {found['distinct_accepted']} addresses, "
                f"{found['inquiries']} inquiries for {found['accepted']} submissions, "
                f"{found['messages']} messages",
            ),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
