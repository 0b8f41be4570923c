"""Load generator for the webhook benchmarks: signed Stripe events over HTTP/1.1 keep-alive.

Runs as its own process (the benchmarks start one or more), so that the client's CPU is not the
server's. A minimal asyncio protocol on uvloop with the request bytes built from a template:
each event gets a unique id and a fresh ``Stripe-Signature`` (HMAC-SHA256 over ``t.body``), and
the client stays cheap enough (~20 µs a request) to leave the cores to the server.

Two modes:

- ``closed``: ``--connections`` connections each send their next event as soon as the previous
  answer arrives, for ``--duration`` seconds: the most the server can take.
- ``rate``: ``--rate`` events a second on a fixed schedule (an open loop), for ``--duration``
  seconds; latency counts from each event's scheduled time, so a server that falls behind is
  charged for the queue too (no coordinated omission).

Writes a JSON summary (and, with ``--sends``, each event's id and send time) to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVENT_ID_WIDTH = 24
INVOICE_ID_WIDTH = 24
_EVT_MARK = "E" * EVENT_ID_WIDTH
_INV_MARK = "I" * INVOICE_ID_WIDTH
_TS_MARK = 1999999999  # replaced by the send time (same width as today's Unix seconds)
CONNECT_INTERVAL = 0.01


def event_id(prefix: str, seq: int) -> str:
    return f"evt_{prefix}{seq:0{EVENT_ID_WIDTH - len(prefix) - 4}d}"


def invoice_id(prefix: str, seq: int) -> str:
    return f"in_{prefix}{seq:0{INVOICE_ID_WIDTH - len(prefix) - 3}d}"


def event_template(invoice: dict[str, Any]) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """An ``invoice.paid`` event as Stripe sends it (API 2024-06-20), with ``invoice`` (Stripe's
    published fixture) as data.object, split around the event id, the invoice id and the time."""
    obj = dict(invoice)
    obj.update(
        id=_INV_MARK,
        status="paid",
        paid=True,
        amount_paid=obj.get("amount_due", 1000),
        amount_remaining=0,
        attempted=True,
        attempt_count=1,
        hosted_invoice_url="https://invoice.stripe.com/i/acct_bench/test_bench",
    )
    obj["status_transitions"] = {
        "finalized_at": _TS_MARK,
        "marked_uncollectible_at": None,
        "paid_at": _TS_MARK,
        "voided_at": None,
    }
    envelope = {
        "id": _EVT_MARK,
        "object": "event",
        "api_version": "2024-06-20",
        "created": _TS_MARK,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "invoice.paid",
    }
    text = json.dumps(envelope, separators=(",", ":"))
    # Split on the markers; the time occurs several times, so parts are re-joined with it.
    before_evt, rest = text.split(_EVT_MARK)
    middle, after_inv = rest.split(_INV_MARK)
    return (
        before_evt.encode(),
        middle.encode(),
        after_inv.encode(),
        str(_TS_MARK).encode(),
        b"",
    )


@dataclass
class Sample:
    seq: int
    scheduled: float  # perf_counter
    sent_wall: float  # time.time() when written
    latency: float  # seconds from scheduled to answer
    status: int


@dataclass
class Shared:
    prefix: str
    secret: bytes
    path: bytes
    host: bytes
    parts: tuple[bytes, bytes, bytes, bytes, bytes]
    invoice_prefix: str
    host_name: str = "127.0.0.1"
    port: int = 0
    samples: list[Sample] = field(default_factory=list)
    errors: int = 0
    reconnects: int = 0

    def request(self, seq: int) -> tuple[bytes, float]:
        before_evt, middle, after_inv, ts_mark, _ = self.parts
        now = time.time()
        ts = str(int(now)).encode()
        body = (
            before_evt
            + event_id(self.prefix, seq).encode()
            + middle
            + invoice_id(self.invoice_prefix, seq).encode()
            + after_inv
        )
        body = body.replace(ts_mark, ts)
        mac = hmac.new(self.secret, ts + b"." + body, hashlib.sha256).hexdigest()
        head = (
            b"POST " + self.path + b" HTTP/1.1\r\nHost: " + self.host + b"\r\n"
            b"Content-Type: application/json; charset=utf-8\r\n"
            b"User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
            b"Stripe-Signature: t=" + ts + b",v1=" + mac.encode() + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        return head + body, now


class Connection(asyncio.Protocol):
    """One keep-alive connection with one request in flight; parses just enough HTTP/1.1."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.waiter: asyncio.Future[int] | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport.
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        self.buffer = self.buffer[end + 4 + length :]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    async def call(self, request: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


async def connect(host: str, port: int) -> Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(Connection, host, port)
    return protocol


async def _one(shared: Shared, conn: Connection, seq: int, scheduled: float) -> Connection:
    """Send event ``seq`` on ``conn`` and record the answer; returns the connection to use
    next. A connection the server closed (uvicorn ends keep-alives idle for 5 s) is replaced,
    and a request it closed under is sent once more on a new one, as a sender would."""
    status = 0
    sent_wall = time.time()
    for _attempt in range(2):
        if conn.lost.done():
            conn = await connect(shared.host_name, shared.port)
            shared.reconnects += 1
        request, sent_wall = shared.request(seq)
        try:
            status = await conn.call(request)
            break
        except (ConnectionError, RuntimeError):
            status = 0
    if status == 0:
        shared.errors += 1
    shared.samples.append(
        Sample(seq, scheduled, sent_wall, time.perf_counter() - scheduled, status)
    )
    return conn


async def closed_loop(
    shared: Shared, host: str, port: int, connections: int, duration: float, first_seq: int
) -> int:
    """Each connection sends again as soon as it is answered. Returns the next unused seq.

    Connections open one at a time, each starting to send at once: a server process busy with
    the earlier ones leaves the next accept to an idle one, as with traffic that builds up
    (opened in a burst, all would go to whichever process the kernel woke first)."""
    counter = iter(range(first_seq, first_seq + 100_000_000))
    deadline = time.perf_counter() + duration
    conns: list[Connection] = []

    async def run(conn: Connection) -> None:
        while time.perf_counter() < deadline:
            conn = await _one(shared, conn, next(counter), time.perf_counter())
        conns.append(conn)

    tasks = []
    for _ in range(connections):
        tasks.append(asyncio.create_task(run(await connect(host, port))))
        await asyncio.sleep(CONNECT_INTERVAL)
    await asyncio.gather(*tasks)
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    return next(counter)


async def open_loop(
    shared: Shared,
    host: str,
    port: int,
    rate: float,
    duration: float,
    first_seq: int,
    max_connections: int,
) -> int:
    """``rate`` events a second on schedule, each on an idle connection (opened as needed)."""
    idle: list[Connection] = []
    for _ in range(min(8, max_connections)):
        idle.append(await connect(host, port))
        await asyncio.sleep(CONNECT_INTERVAL)
    opened = len(idle)
    freed = asyncio.Event()
    total = int(rate * duration)
    start = time.perf_counter() + 0.05
    tasks: set[asyncio.Task[None]] = set()

    async def dispatch(conn: Connection, seq: int, scheduled: float) -> None:
        idle.append(await _one(shared, conn, seq, scheduled))
        freed.set()

    for index in range(total):
        scheduled = start + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        while not idle:
            if opened < max_connections:
                opened += 1
                idle.append(await connect(host, port))
            else:
                freed.clear()
                await freed.wait()
        task = asyncio.create_task(dispatch(idle.pop(), first_seq + index, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    return first_seq + total


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def summarize(samples: list[Sample], warmup: float, started: float, ended: float) -> dict[str, Any]:
    """Figures over the samples scheduled after the warm-up."""
    window_start = started + warmup
    kept = [s for s in samples if s.scheduled >= window_start]
    ok = [s for s in kept if s.status == 200]
    latencies = sorted(s.latency for s in ok)
    elapsed = max(1e-9, ended - window_start)
    statuses: dict[str, int] = {}
    for s in kept:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    return {
        "requests": len(kept),
        "ok": len(ok),
        "statuses": statuses,
        "elapsed": elapsed,
        "ok_per_second": len(ok) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": (latencies[-1] * 1000) if latencies else float("nan"),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    invoice = json.loads(Path(args.fixture).read_text())["resources"]["invoice"]
    shared = Shared(
        prefix=args.prefix,
        secret=args.secret.encode(),
        path=f"/webhooks/stripe/{args.workspace}".encode(),
        host=f"{args.host}:{args.port}".encode(),
        parts=event_template(invoice),
        invoice_prefix=args.invoice_prefix,
        host_name=args.host,
        port=args.port,
    )
    event_bytes = len(shared.request(0)[0].split(b"\r\n\r\n", 1)[1])
    if args.start_at:
        # Several generator processes start their clocks together.
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
    started = time.perf_counter()
    if args.mode == "closed":
        await closed_loop(
            shared, args.host, args.port, args.connections, args.duration, args.first_seq
        )
    else:
        await open_loop(
            shared,
            args.host,
            args.port,
            args.rate,
            args.duration,
            args.first_seq,
            args.connections,
        )
    # The window ends when the last request counted was scheduled or answered, whichever is
    # later, so throughput is never flattered by work still in flight.
    last = max((s.scheduled + s.latency for s in shared.samples), default=started)
    ended = min(last, started + args.duration) if args.mode == "closed" else last
    summary = summarize(shared.samples, args.warmup, started, ended)
    summary.update(
        mode=args.mode,
        connections=args.connections,
        target_rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
        event_bytes=event_bytes,
        connection_errors=shared.errors,
        reconnects=shared.reconnects,
    )
    if args.sends:
        summary["sends"] = [
            [event_id(args.prefix, s.seq), s.sent_wall, s.status]
            for s in shared.samples
            if s.scheduled >= started + args.warmup
        ]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--mode", choices=("closed", "rate"), default="closed")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=0.0)
    parser.add_argument("--prefix", default="b")
    parser.add_argument("--invoice-prefix", default="b")
    parser.add_argument("--first-seq", type=int, default=0)
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--sends", action="store_true", help="record each event's send time")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        import uvloop

        summary = uvloop.run(main_async(args))
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        summary = asyncio.run(main_async(args))
    Path(args.out).write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
