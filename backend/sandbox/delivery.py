"""Outbound webhooks from the sandbox to the product, the way providers send them: signed at
send time, retried with backoff while the receiver fails, and (for reliability tests) sometimes
duplicated or reordered. Every attempt is kept for the control page.

Tested in tests/sandbox/test_stripe.py (webhook delivery and retries)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from backend.sandbox.store import Store, new_id
from backend.sandbox.switches import DeliverySwitches

# Builds the headers for one attempt (a fresh signature timestamp each time, as Stripe does).
HeaderSigner = Callable[[bytes], dict[str, str]]


@dataclass
class Delivery:
    id: str
    provider: str
    url: str
    body: bytes
    sign: HeaderSigner
    label: str
    attempts: int = 0
    next_at: float = field(default_factory=time.monotonic)


@dataclass
class RetryPolicy:
    first_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0
    max_attempts: int = 8


class Deliverer:
    def __init__(
        self,
        store: Store,
        switches: DeliverySwitches,
        policy: RetryPolicy | None = None,
        *,
        reorder_window: float = 0.3,
    ) -> None:
        self._store = store
        self._switches = switches
        self._policy = policy or RetryPolicy()
        self._reorder_window = reorder_window
        self._queue: asyncio.Queue[Delivery] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._held: list[Delivery] = []

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._client = httpx.AsyncClient(timeout=10)
        self._tasks = [asyncio.create_task(self._run()) for _ in range(4)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.aclose()

    def send(self, provider: str, url: str, body: bytes, sign: HeaderSigner, label: str) -> None:
        """Queue a delivery; safe to call from request handlers running in worker threads."""
        copies = 2 if provider == "stripe" and self._switches.duplicate else 1
        for _ in range(copies):
            delivery = Delivery(new_id("dlv_", 16), provider, url, body, sign, label)
            if self._loop is None or self._queue is None:
                raise RuntimeError("the sandbox's deliverer is not running")
            self._loop.call_soon_threadsafe(self._enqueue, delivery)

    def _enqueue(self, delivery: Delivery) -> None:
        assert self._queue is not None
        if delivery.provider == "stripe" and self._switches.reorder:
            # Hold a short window of events, then release them shuffled.
            self._held.append(delivery)
            if len(self._held) == 1:
                assert self._loop is not None
                self._loop.call_later(self._reorder_window, self._release_held)
            return
        self._queue.put_nowait(delivery)

    def _release_held(self) -> None:
        assert self._queue is not None
        held, self._held = self._held, []
        random.shuffle(held)
        for delivery in held:
            self._queue.put_nowait(delivery)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            delivery = await self._queue.get()
            wait = delivery.next_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._attempt(delivery)

    async def _attempt(self, delivery: Delivery) -> None:
        assert self._queue is not None
        delivery.attempts += 1
        status: int | None = None
        answer = ""
        try:
            response = await self._client.post(
                delivery.url,
                content=delivery.body,
                headers={"Content-Type": "application/json", **delivery.sign(delivery.body)},
            )
            status, answer = response.status_code, response.text[:300]
        except httpx.HTTPError as exc:
            answer = f"{type(exc).__name__}: {exc}"[:300]
        ok = status is not None and 200 <= status < 300
        retry_in: float | None = None
        if not ok and delivery.attempts < self._policy.max_attempts:
            retry_in = min(
                self._policy.max_delay,
                self._policy.first_delay * self._policy.factor ** (delivery.attempts - 1),
            )
        self._record(delivery, status, answer, ok, retry_in)
        if retry_in is not None:
            delivery.next_at = time.monotonic() + retry_in
            self._queue.put_nowait(delivery)

    def _record(
        self, delivery: Delivery, status: int | None, answer: str, ok: bool, retry_in: float | None
    ) -> None:
        entry: dict[str, Any] = {
            "id": delivery.id,
            "provider": delivery.provider,
            "label": delivery.label,
            "url": delivery.url,
            "attempts": delivery.attempts,
            "status": status,
            "response": answer,
            "delivered": ok,
            "retry_in": retry_in,
            "at": time.time(),
        }
        with self._store.section("deliveries") as section:
            log: list[dict[str, Any]] = section.setdefault("log", [])
            # One row per delivery, updated by each attempt; the newest 500 are kept.
            for index, existing in enumerate(log):
                if existing["id"] == delivery.id:
                    log[index] = entry
                    break
            else:
                log.append(entry)
            del log[:-500]
