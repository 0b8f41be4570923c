"""Switches that make a provider misbehave on purpose: an outage (500s or hanging requests), a
rate limit answering 429, the latency of a provider far away, and an answer that comes late
after the work was done. Set from the control page or
POST /_sandbox/switches; applied by a middleware to every request under the provider's path
prefix, which also counts those requests by answer (GET /_sandbox/requests): what a benchmark
or a test made the product send.

Tested in tests/sandbox/ (outage, rate-limit and delivery switches) and
tests/jobs/test_reliability.py."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

Outage = Literal["none", "errors", "timeouts"]
# Renders the provider's own error shape: (status, kind, message) -> response.
ErrorRenderer = Callable[[int, str, str], Response]


@dataclass
class ProviderSwitches:
    outage: Outage = "none"
    # Requests per second allowed for one account (the provider's: Stripe counts per account,
    # the others per API key or token); None is unlimited.
    rate_limit: float | None = None
    # How long a "timeouts" outage holds a request before answering 504.
    hang_seconds: float = 60.0
    # Added to every API answer: the round trip to a provider far away (Stripe's is tens to
    # hundreds of milliseconds; the sandbox's own, over loopback, a few).
    latency_seconds: float = 0.0
    # Held after the request was handled: the provider did the work, but its answer comes
    # late (past a caller's deadline, the outcome is unknown to it: SendGrid's mail send).
    late_answer_seconds: float = 0.0
    # Stripe's search is eventually consistent: an object made less than this many seconds ago
    # is not found by search yet (about a minute at Stripe), though lists show it at once.
    search_lag_seconds: float = 0.0


@dataclass
class DeliverySwitches:
    """Stripe delivers some events twice and out of order; these make it happen on purpose."""

    duplicate: bool = False
    reorder: bool = False


@dataclass
class Switches:
    providers: dict[str, ProviderSwitches] = field(default_factory=dict)
    delivery: DeliverySwitches = field(default_factory=DeliverySwitches)
    # The sandbox's clock runs this far ahead of the machine's: what a test moves to let a day
    # pass (Stripe forgets an idempotency key after 24 hours) without waiting one.
    clock_offset_seconds: float = 0.0

    def now(self) -> float:
        """The sandbox's time, in Unix seconds."""
        return time.time() + self.clock_offset_seconds

    def of(self, provider: str) -> ProviderSwitches:
        return self.providers.setdefault(provider, ProviderSwitches())

    def as_dict(self) -> dict[str, object]:
        return {
            "providers": {name: asdict(s) for name, s in self.providers.items()},
            "delivery": asdict(self.delivery),
            "clock": {"offset_seconds": self.clock_offset_seconds},
        }


class TokenBuckets:
    """One bucket per (provider, account): Stripe limits per account, not per sandbox (nor
    per product calling it: two workspaces' accounts never share one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def take(self, provider: str, key: str, rate: float) -> float:
        """0 if allowed now, else seconds until a token is free."""
        with self._lock:
            now = time.monotonic()
            tokens, last = self._buckets.get((provider, key), (rate, now))
            tokens = min(rate, tokens + (now - last) * rate)
            if tokens >= 1:
                self._buckets[(provider, key)] = (tokens - 1, now)
                return 0.0
            self._buckets[(provider, key)] = (tokens, now)
            return (1 - tokens) / rate


class RequestCounts:
    """API requests each provider's emulator answered, by status code (429s of the rate limit
    and the outage's errors included), and those it is answering now (``in_flight``: held by a
    latency or an outage; a test waits for its request to be there). Hosted pages and the
    sandbox's own helpers are not API requests and are not counted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[int, int]] = {}
        self._in_flight: dict[str, int] = {}
        # Answered requests by the account the rate limit counts them against (only while a
        # rate limit is on: the look-up is not free): what each tenant sent, apart.
        self._accounts: dict[str, dict[str, int]] = {}

    def started(self, provider: str) -> None:
        with self._lock:
            self._in_flight[provider] = self._in_flight.get(provider, 0) + 1

    def finished(self, provider: str) -> None:
        with self._lock:
            self._in_flight[provider] = max(0, self._in_flight.get(provider, 0) - 1)

    def add(self, provider: str, status: int, account: str | None = None) -> None:
        with self._lock:
            by_status = self._counts.setdefault(provider, {})
            by_status[status] = by_status.get(status, 0) + 1
            if account is not None:
                by_account = self._accounts.setdefault(provider, {})
                by_account[account] = by_account.get(account, 0) + 1

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._accounts.clear()

    def as_dict(self) -> dict[str, dict[str, object]]:
        with self._lock:
            providers = set(self._counts) | {p for p, n in self._in_flight.items() if n}
            return {
                provider: {
                    "requests": sum(by_status.values()),
                    "rate_limited": by_status.get(429, 0),
                    "by_status": {str(code): n for code, n in sorted(by_status.items())},
                    "by_account": dict(self._accounts.get(provider, {})),
                    "in_flight": self._in_flight.get(provider, 0),
                }
                for provider in sorted(providers)
                for by_status in [self._counts.get(provider, {})]
            }


# What one request's rate limit is counted against, from its headers: the provider's own
# notion of an account (Stripe's is the account, whichever of its keys is used).
RateKey = Callable[[Request], str]


def by_api_key(request: Request) -> str:
    """The request's API key, as a digest: the key itself is never kept or shown (the counts
    by account are served on /_sandbox/requests)."""
    credential = request.headers.get("authorization", "") or request.client.host  # type: ignore[union-attr]
    return "key:" + hashlib.sha256(credential.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ProviderMount:
    name: str
    prefix: str
    render_error: ErrorRenderer
    rate_key: RateKey = by_api_key


def make_middleware(
    switches: Switches, mounts: list[ProviderMount], counts: RequestCounts | None = None
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    buckets = TokenBuckets()
    counts = counts if counts is not None else RequestCounts()

    async def apply(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        mount = next((m for m in mounts if path.startswith(m.prefix + "/")), None)
        # Hosted pages and mailboxes are for people: only the API misbehaves (and is counted).
        if mount is None or "/_pages/" in path or "/_sandbox/" in path:
            return await call_next(request)
        counts.started(mount.name)
        try:
            response = await answer(request, call_next, mount)
        finally:
            counts.finished(mount.name)
        limited = switches.of(mount.name).rate_limit
        counts.add(mount.name, response.status_code, mount.rate_key(request) if limited else None)
        return response

    async def answer(
        request: Request, call_next: Callable[[Request], Awaitable[Response]], mount: ProviderMount
    ) -> Response:
        state = switches.of(mount.name)
        if state.outage == "errors":
            return mount.render_error(500, "api_error", "The sandbox is simulating an outage.")
        if state.outage == "timeouts":
            await asyncio.sleep(state.hang_seconds)
            return mount.render_error(504, "api_error", "The sandbox simulated a timeout.")
        if state.rate_limit:
            wait = buckets.take(mount.name, mount.rate_key(request), state.rate_limit)
            if wait > 0:
                response = mount.render_error(
                    429, "rate_limit", "Too many requests hit the API too quickly."
                )
                response.headers["Retry-After"] = str(max(1, round(wait)))
                return response
        if state.latency_seconds > 0:
            await asyncio.sleep(state.latency_seconds)
        response = await call_next(request)
        if state.late_answer_seconds > 0:
            await asyncio.sleep(state.late_answer_seconds)
        return response

    return apply
