"""The receiver cache: a workspace's webhook receiver (its integration's ids and secret) kept
for a few seconds, so that a burst of a workspace's Stripe events verifies on the event loop
without the database, and concurrent misses share one lookup.

Performance machinery for the sidecar's busiest route (``stripe.receive_workspace_event``),
measured by bench/bench_ingest.py (docs/PERFORMANCE.md, "Ingest after the receiver lookup
fix"): a hit costs no query and no decryption; a miss costs the one lookup of
``backend.connections.receivers.for_workspace``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any

from anyio import to_thread
from fastapi import Request
from sqlalchemy import Engine

from backend.api.webhooks.common import (
    Intake,
    Rejected,
    app_settings,
    verified,
    workspace_receiver,
)
from backend.connections.receivers import Receiver


class ReceiverCache:
    """Receivers for a few seconds, so that a burst of webhooks to one workspace costs one
    lookup and one decryption rather than one per request.

    Only found, connected, configured receivers are kept (a 404 is looked up every time, so a
    new connection works at once). A signature that fails against a kept secret is checked
    again against a fresh lookup, so a rotated secret works at once too; a disconnection takes
    effect within ``ttl`` seconds. ``ttl`` 0 turns the cache off.
    """

    def __init__(self, ttl: float, *, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, Receiver]] = {}
        self._lock = threading.Lock()
        self._lookups: dict[tuple[asyncio.AbstractEventLoop, Hashable], asyncio.Task[Receiver]] = {}

    async def lookup(self, key: Hashable, load: Callable[[], Awaitable[Receiver]]) -> Receiver:
        """``load()`` and keep its receiver, once for all the requests that want ``key``
        meanwhile. When an entry
        expires, every request in flight to that workspace misses at once: without this, each
        would look the receiver up and decrypt its secret, holding a pooled connection.

        The lookup runs as a task of its own: a request that goes away does not cancel it
        for the others; each waiter gets its result or its error."""
        flight = (asyncio.get_running_loop(), key)
        task = self._lookups.get(flight)
        if task is None:

            async def load_and_keep() -> Receiver:
                receiver = await load()
                # Kept before the flight lands: a request arriving in between finds it.
                self.put(key, receiver)
                return receiver

            task = asyncio.ensure_future(load_and_keep())
            self._lookups[flight] = task
            task.add_done_callback(lambda done: self._landed(flight, done))
        return await asyncio.shield(task)

    def _landed(
        self, flight: tuple[asyncio.AbstractEventLoop, Hashable], task: asyncio.Task[Receiver]
    ) -> None:
        if self._lookups.get(flight) is task:
            del self._lookups[flight]
        if not task.cancelled():
            task.exception()  # each waiter raises it; do not also report it as unretrieved

    def get(self, key: Hashable) -> Receiver | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: Hashable, receiver: Receiver) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self._max_entries:
                now = time.monotonic()
                for stale in [k for k, (until, _) in self._entries.items() if until < now]:
                    del self._entries[stale]
                if len(self._entries) >= self._max_entries:
                    self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl, receiver)

    def drop(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)


def receiver_cache(request: Request) -> ReceiverCache:
    """The app's receiver cache (one per app, so test apps never share entries)."""
    cache: ReceiverCache | None = getattr(request.app.state, "receivers", None)
    if cache is None:
        cache = ReceiverCache(app_settings(request).webhook_receiver_cache_seconds)
        request.app.state.receivers = cache
    return cache


async def verified_receiver(
    request: Request,
    engine: Engine,
    intake: Intake,
    *,
    slug: str,
    providers: Iterable[str],
    key: str,
    check: Callable[[Any], object],
) -> Receiver:
    """Find the workspace's receiving integration and its secret ``key`` (404s as
    ``common.workspace_receiver``), then run ``check(secret)`` (401s as ``verified``).
    Receivers come from the app's ReceiverCache when fresh, without touching the database; a
    lookup runs in the thread pool."""
    cache = receiver_cache(request)
    wanted = tuple(providers)
    cache_key = (engine, slug, wanted, key)
    cached = cache.get(cache_key)
    if cached is not None:
        try:
            verified(intake, lambda: check(cached.secret))
            return cached
        except Rejected:
            cache.drop(cache_key)  # perhaps rotated: check against the database's secret
    receiver = await cache.lookup(
        cache_key,
        lambda: to_thread.run_sync(_lookup, engine, intake, slug, wanted, key),
    )
    verified(intake, lambda: check(receiver.secret))
    return receiver


def _lookup(
    engine: Engine, intake: Intake, slug: str, providers: tuple[str, ...], key: str
) -> Receiver:
    return workspace_receiver(engine, intake, slug=slug, providers=providers, key=key)
