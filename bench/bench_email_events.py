"""SendGrid's Event Webhook (issue 15, the second figure): signed batches of events posted to
the sidecar's receiver (``POST /webhooks/sendgrid/{workspace}``, ECDSA P-256 verified, each
event stored in the inbox with its job), and their effects on ``email_messages`` applied by the
scheduler processes. PostgreSQL with fsync and synchronous_commit on; the sidecar as deployed
(uvicorn, two workers); the load from this process's threads over loopback.

1. Intake: posts of 1,000 events (a fresh signature each) from ``--connections`` threads as
   fast as they are answered, no scheduler running: events stored per second (counted in the
   database afterwards: every event and its job).
2. Effects: ``--rate`` events/s (posts of ``--batch`` events on a fixed schedule) with
   ``--schedulers`` scheduler processes applying them; each event is the first about its
   message (delivered, open or click of a sent message). Its delay: from the time its post was
   scheduled to the commit that set its row's ``last_event_at``, read afterwards from
   PostgreSQL's commit timestamps (``track_commit_timestamp``; ``pg_xact_commit_timestamp``
   of the row's ``xmin``: the transaction that last wrote it, the one that applied the event).
   Nothing polls the tables during the run: an earlier version looked every 50 ms for each
   waiting event, and that cost the database a share of the CPU the measured work needed.

    .venv/bin/python bench/bench_email_events.py
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
    started_schedulers,
    verdict,
    wait_ready,
)
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from backend import jobs  # noqa: F401 - declares the outbox's job kinds
from backend.email import service
from backend.email.service import Recipient
from models import Integration, IntegrationStatus, Plan, Workspace

SLUG = "bench-events"
INTAKE_TARGET = 10_000.0
P95_TARGET_S = 5.0
KINDS = ("delivered", "delivered", "delivered", "open", "open", "click")


def seed(engine: Engine, public_key: str, messages: int) -> tuple[int, list[int]]:
    """The workspace, its SendGrid with the bench's public key, and ``messages`` sent messages."""
    with Session(engine) as session:
        workspace = Workspace(name="Bench Events", slug=SLUG, plan=Plan.PRO)
        session.add(workspace)
        session.flush()
        session.add(
            Integration(
                workspace_id=workspace.id,
                provider="sendgrid",
                display_name="SendGrid",
                status=IntegrationStatus.ACTIVE,
                settings={
                    "from_email": "hello@lakeside.example",
                    "event_webhook_public_key": public_key,
                },
            )
        )
        session.commit()
        ws = workspace.id
    ids: list[int] = []
    for start in range(0, messages, 10_000):
        with Session(engine) as session:
            ids += service.queue_emails(
                session,
                workspace_id=ws,
                purpose="payment_request",
                recipients=[
                    Recipient(f"person{n}@example.org", f"Person {n}", "client", n, {"n": n})
                    for n in range(start, min(messages, start + 10_000))
                ],
            )
            session.commit()
    with engine.begin() as conn:
        # Sent already (by request: 1,000 a SendGrid X-Message-Id), their jobs done.
        conn.execute(
            text(
                "UPDATE email_messages SET status = 'sent', sent_at = now(), "
                "sendgrid_message_id = 'xbench' || (id / 1000) WHERE workspace_id = :w"
            ),
            {"w": ws},
        )
        conn.execute(text("UPDATE outbox_jobs SET status = 'done' WHERE kind = 'email.send'"))
    return ws, ids


def event(ws: int, message_id: int, kind: str) -> dict[str, object]:
    return {
        "hub_message_id": str(message_id),
        "hub_workspace_id": str(ws),
        "email": f"person{message_id}@example.org",
        "timestamp": int(time.time()),
        "event": kind,
        "sg_event_id": secrets.token_urlsafe(16),
        "sg_message_id": f"xbench{message_id // 1000}.filterdrecv-bench-{message_id}.0",
        "category": "payment_request",
        **({"response": "250 OK", "smtp-id": "<xbench@sandbox>"} if kind == "delivered" else {}),
        **({"sg_machine_open": False, "useragent": "Mozilla/5.0"} if kind == "open" else {}),
        **({"url": "https://pay.example/i/INV-1"} if kind == "click" else {}),
    }


class Poster:
    """Signed posts to the receiver, one keep-alive connection a thread."""

    def __init__(self, url: str, key: ec.EllipticCurvePrivateKey) -> None:
        self.url = url
        self.key = key
        self.local = threading.local()

    def client(self):  # type: ignore[no-untyped-def]
        import httpx

        if not hasattr(self.local, "client"):
            self.local.client = httpx.Client(timeout=60)
        return self.local.client

    def post(self, body: bytes) -> int:
        timestamp = str(int(time.time()))
        signature = self.key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        response = self.client().post(
            self.url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            },
        )
        return response.status_code


def body_of(events: list[dict[str, object]]) -> bytes:
    return (json.dumps(events, separators=(",", ":")) + "\r\n").encode()


def stored(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        events = conn.execute(
            text("SELECT count(*) FROM inbound_events WHERE provider = 'sendgrid'")
        ).scalar_one()
        # The events the jobs name: a group's job names up to 128 (backend/platform/inbox.py).
        jobs_ = conn.execute(
            text(
                "SELECT coalesce(sum(CASE WHEN payload::jsonb ? 'inbound_ids' "
                "THEN jsonb_array_length(payload::jsonb -> 'inbound_ids') ELSE 1 END), 0) "
                "FROM outbox_jobs WHERE idempotency_key LIKE 'inbox:sendgrid:%'"
            )
        ).scalar_one()
    return int(events), int(jobs_)


def intake_phase(
    engine: Engine, poster: Poster, ws: int, ids: list[int], *, seconds: float, connections: int
) -> dict[str, float]:
    """As fast as answered, for ``seconds``: posts of 1,000 events about the seeded messages
    (repeat deliveries of a message's events are distinct events, new sg_event_ids)."""
    bodies = [
        body_of([event(ws, ids[(b * 1000 + n) % len(ids)], "processed") for n in range(1000)])
        for b in range(40)
    ]
    before = stored(engine)
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    counter = iter(range(10**9))

    def worker() -> None:
        while time.monotonic() < stop_at:
            n = next(counter)
            # Each post its own events: fresh ids on a pre-built template of the batch.
            body = bodies[n % len(bodies)].replace(
                b'"sg_event_id":"', f'"sg_event_id":"{n}-'.encode()
            )
            status = poster.post(body)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    started_at = time.monotonic()
    with ThreadPoolExecutor(connections) as pool:
        for future in [pool.submit(worker) for _ in range(connections)]:
            future.result()
    elapsed = time.monotonic() - started_at
    after = stored(engine)
    events = after[0] - before[0]
    return {
        "seconds": elapsed,
        "events": events,
        "jobs": after[1] - before[1],
        "per_second": events / elapsed,
        "posts": sum(statuses.values()),
        "statuses": statuses,  # type: ignore[dict-item]
    }


def effects_phase(
    engine: Engine,
    poster: Poster,
    ws: int,
    ids: list[int],
    *,
    rate: float,
    batch: int,
    seconds: float,
) -> dict[str, object]:
    """``rate`` events/s in posts of ``batch`` on a fixed schedule; each event the first about
    its message. The delay of each event: its post's scheduled time to the commit that set its
    row's ``last_event_at`` (both on this machine's clock)."""
    interval = batch / rate
    posts = int(seconds / interval)
    assert posts * batch <= len(ids), "seed more messages"
    sent = ids[: posts * batch]
    scheduled: dict[int, float] = {}
    lock = threading.Lock()
    statuses: dict[int, int] = {}
    start = time.time() + 0.5

    def send(index: int) -> None:
        chunk = ids[index * batch : (index + 1) * batch]
        events = [event(ws, m, KINDS[m % len(KINDS)]) for m in chunk]
        body = body_of(events)
        at = start + index * interval
        time.sleep(max(0.0, at - time.time()))
        # The schedule, not the send: a late post counts its lateness (no coordinated omission).
        with lock:
            for m in chunk:
                scheduled[m] = at
        status = poster.post(body)
        with lock:
            statuses[status] = statuses.get(status, 0) + 1

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(send, range(posts)))
    # Then wait for the schedulers to finish, looking once a second (the run's load is over).
    deadline = time.monotonic() + 120
    applied_at: dict[int, float] = {}
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            left = conn.execute(
                text(
                    "SELECT count(*) FROM email_messages WHERE id = ANY(:ids) "
                    "AND last_event_at IS NULL"
                ),
                {"ids": sent},
            ).scalar_one()
            conn.rollback()
            if not left:
                break
            time.sleep(1.0)
        rows = conn.execute(
            text(
                "SELECT id, extract(epoch FROM pg_xact_commit_timestamp(xmin)) "
                "FROM email_messages WHERE id = ANY(:ids) AND last_event_at IS NOT NULL"
            ),
            {"ids": sent},
        ).all()
        applied_at = {int(row[0]): float(row[1]) for row in rows}
    delays = [applied_at[m] - scheduled[m] for m in sent if m in applied_at]
    ordered = sorted(delays)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("inf")

    return {
        "events": posts * batch,
        "applied": len(delays),
        "missing": len(sent) - len(applied_at),
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "max": ordered[-1] if ordered else float("inf"),
        "statuses": statuses,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="intake phase")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--batch", type=int, default=200, help="events a post, effects phase")
    parser.add_argument("--effects-seconds", type=float, default=30.0)
    parser.add_argument("--schedulers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=SIDECAR_WORKERS)
    parser.add_argument("--skip-intake", action="store_true")
    args = parser.parse_args()

    private = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    messages = int(args.rate * args.effects_seconds) + 10_000
    with database(durable=True, extra=("track_commit_timestamp=on",)) as db:
        log(f"seeding {messages} sent messages")
        ws, ids = seed(db.engine, public, messages)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        port = free_port()
        env = product_env(db.url)
        with contextlib.ExitStack() as stack:
            sidecar = stack.enter_context(
                started("sidecar", sidecar_command(port, args.workers), env)
            )
            wait_ready(port, sidecar)
            poster = Poster(f"http://127.0.0.1:{port}/webhooks/sendgrid/{SLUG}", private)
            poster.post(body_of([event(ws, ids[0], "processed")]))  # warm
            intake: dict[str, float] = {}
            intake_cpu = ""
            if not args.skip_intake:
                meter = CpuMeter(db, {sidecar.popen.pid: "sidecar"})
                meter.start()
                log(
                    f"intake: posts of 1,000 events, {args.connections} threads, {args.seconds:g} s"
                )
                intake = intake_phase(
                    db.engine, poster, ws, ids, seconds=args.seconds, connections=args.connections
                )
                intake_cpu = meter.stop()
                log(f"intake: {intake['per_second']:,.0f} events/s; {intake_cpu}")
            # The intake's events are set aside (marked handled, their jobs done): the second
            # figure is measured on its own events, from an empty queue.
            with db.engine.begin() as conn:
                conn.execute(text("UPDATE inbound_events SET status = 'handled'"))
                conn.execute(
                    text("UPDATE outbox_jobs SET status = 'done' WHERE kind = 'inbox.process'")
                )
            schedulers = started_schedulers(stack, args.schedulers, env)
            with db.engine.begin() as conn:
                conn.execute(
                    text(
                        "UPDATE email_messages SET status = 'sent', last_event_at = NULL, "
                        "delivered_at = NULL WHERE workspace_id = :w"
                    ),
                    {"w": ws},
                )
            meter = CpuMeter(
                db, {sidecar.popen.pid: "sidecar", **{s.popen.pid: s.name for s in schedulers}}
            )
            meter.start()
            log(
                f"effects: {args.rate:g} events/s in posts of {args.batch}, "
                f"{args.effects_seconds:g} s"
            )
            effects = effects_phase(
                db.engine,
                poster,
                ws,
                ids[: int(args.rate * args.effects_seconds) + args.batch],
                rate=args.rate,
                batch=args.batch,
                seconds=args.effects_seconds,
            )
            effects_cpu = meter.stop()
            facts = conditions(
                db,
                sidecar=" ".join(sidecar_command(port, args.workers)[1:]),
                schedulers=f"{args.schedulers} x python scheduler.py (default outbox settings)",
                intake_cpu=intake_cpu,
                effects_cpu=effects_cpu,
            )

    print()
    print("== SendGrid events (bench/bench_email_events.py)")
    print_conditions(facts)
    checks = []
    if intake:
        print(
            f"intake: {intake['events']:,} events (named by jobs: {intake['jobs']:,}) stored in "
            f"{intake['seconds']:.1f} s by {intake['posts']} posts {intake['statuses']}: "
            f"{intake['per_second']:,.0f} events/s"
        )
        checks.append(
            (
                f"intake >= {INTAKE_TARGET:,.0f} events/s",
                intake["per_second"] >= INTAKE_TARGET and intake["events"] == intake["jobs"],
                f"{intake['per_second']:,.0f} events/s",
            )
        )
    print(
        f"effects at {args.rate:g}/s: {effects['applied']} of {effects['events']} applied "
        f"({effects['missing']} not seen), posts {effects['statuses']}; p50 "
        f"{effects['p50']:.2f} s, p95 {effects['p95']:.2f} s, p99 {effects['p99']:.2f} s, "
        f"max {effects['max']:.2f} s"
    )
    checks.append(
        (
            f"effects p95 <= {P95_TARGET_S:g} s at {args.rate:g} events/s",
            effects["missing"] == 0 and float(effects["p95"]) <= P95_TARGET_S,  # type: ignore[arg-type]
            f"p95 {effects['p95']:.2f} s",
        )
    )
    return verdict(checks)


if __name__ == "__main__":
    raise SystemExit(main())
