"""Every request to a provider, measured where it is made: one ``ProviderCall`` per HTTP request.

The three HTTP clients the adapters use are already wrapped by ``deadline`` (httpx, urllib,
httplib2) so that a total deadline can cut them off; the same wrappers time each request and
hand ``record`` its outcome. So no adapter method can forget to log, and a request the SDK makes
on its own (Google's token refresh inside an API call) is counted like any other.

What a row may say is narrow on purpose: the provider, an operation name made from the method
and the URL's path with its ids replaced by ``{id}`` (never a query string, which can carry a
token), the outcome, the HTTP status, the latency and the error in words made here (a status
line or an exception's type), never the provider's body, which can quote personal data.

Who the call was for (workspace, integration, outbox job) is not known down here: the caller
says it with ``scope(...)`` (the outbox runner, the console's services, the sidecar's OAuth
callback, the periodic jobs), a context variable that follows the call into worker threads
only when copied, as ``asyncio.to_thread`` and the runner do.

``record`` only appends to an in-memory buffer; ``backend/platform/call_log_writer.py`` takes
the buffer in batches, outside any transaction of the caller, and writes the rows and the
per-minute rollups. Recording costs a tuple append under a lock.

Tested in tests/integrations/test_call_log.py and, per call site,
tests/health/test_every_call_logged.py.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

OK = "ok"
REJECTED = "rejected"
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"
TIMEOUT = "timeout"
OUTCOMES = (OK, REJECTED, RATE_LIMITED, UNAVAILABLE, TIMEOUT)

# When the writer falls behind (the database is down), the oldest calls are dropped first:
# health figures are worth less than the memory of the process that serves the work.
MAX_BUFFERED = 200_000


@dataclass(frozen=True, slots=True)
class CallScope:
    """Whom the calls made inside ``scope`` are for, and, where the caller knows it better than
    the URL does, the operation's name (a token refresh, a connection test)."""

    workspace_id: int | None = None
    integration_id: int | None = None
    job_id: int | None = None
    operation: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderCall:
    provider: str
    operation: str
    outcome: str
    http_status: int | None
    latency_ms: int
    error: str | None
    at: dt.datetime
    workspace_id: int | None
    integration_id: int | None
    job_id: int | None


_SCOPE: ContextVar[CallScope] = ContextVar("provider_call_scope", default=CallScope())  # noqa: B039 (frozen)


def current_scope() -> CallScope:
    return _SCOPE.get()


@contextmanager
def scope(
    *,
    workspace_id: int | None = None,
    integration_id: int | None = None,
    job_id: int | None = None,
    operation: str | None = None,
) -> Iterator[CallScope]:
    """Attribute the calls made inside the block; fields left out keep the outer block's."""
    outer = _SCOPE.get()
    inner = replace(
        outer,
        workspace_id=outer.workspace_id if workspace_id is None else workspace_id,
        integration_id=outer.integration_id if integration_id is None else integration_id,
        job_id=outer.job_id if job_id is None else job_id,
        operation=outer.operation if operation is None else operation,
    )
    token = _SCOPE.set(inner)
    try:
        yield inner
    finally:
        _SCOPE.reset(token)


class _Buffer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[ProviderCall] = []
        self.dropped = 0
        self.recorded = 0
        # Set by the writer so that a full batch is written without waiting for its tick.
        self.ready = threading.Event()
        self.batch = 500

    def add(self, call: ProviderCall) -> None:
        with self._lock:
            if len(self._calls) >= MAX_BUFFERED:
                self._calls.pop(0)
                self.dropped += 1
            self._calls.append(call)
            self.recorded += 1
            full = len(self._calls) >= self.batch
        if full:
            self.ready.set()

    def take(self) -> list[ProviderCall]:
        with self._lock:
            calls, self._calls = self._calls, []
            self.ready.clear()
        return calls

    def put_back(self, calls: list[ProviderCall]) -> None:
        """A write that failed: the calls go back in front, in order, within the bound."""
        with self._lock:
            merged = calls + self._calls
            over = len(merged) - MAX_BUFFERED
            if over > 0:
                self.dropped += over
                merged = merged[over:]
            self._calls = merged

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls)


BUFFER = _Buffer()

# Switched off only by the benchmark that measures what logging costs (bench/bench_call_log.py).
enabled = True


def record(call: ProviderCall) -> None:
    if enabled:
        BUFFER.add(call)


# -- naming and classifying ---------------------------------------------------------------------

# The sandbox serves every provider under one address, each below a path of its own; the same
# request to the live provider has no such prefix. Dropped so that figures keep their names.
_SANDBOX_MOUNTS = frozenset({"stripe", "sendgrid", "slack", "graph", "zoho", "google", "hooks"})
# A path segment that names one object rather than a collection: digits, or a provider's id
# ("in_1Nx…", "cus_…", a Drive file id, a UUID, an e-mail address in a path). Two digits at
# least in a short one: a word with one ("oauth2") names an endpoint, not an object.
_ID_LIKE = re.compile(r"^(?=(?:\D*\d){2})[\w.@:=+-]{6,}$|^[\w-]{20,}$|@|^\d+$")
_VERSION = re.compile(r"^v\d+(\.\d+)?$")


def operation_of(method: str, url: str) -> str:
    """``POST /v1/invoices/{id}/finalize`` from ``POST http://…/stripe/v1/invoices/in_9/finalize?x``."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if segments and segments[0] in _SANDBOX_MOUNTS and _is_loopback(parts.hostname):
        segments = segments[1:]
    templated = [s if _VERSION.match(s) or not _ID_LIKE.search(s) else "{id}" for s in segments]
    return f"{method.upper()} /{'/'.join(templated)}"[:80]


def _is_loopback(host: str | None) -> bool:
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def outcome_of_status(status: int) -> str:
    if status < 400:
        return OK
    if status == 429:
        return RATE_LIMITED
    if status in (408, 504):
        return TIMEOUT
    if status >= 500:
        return UNAVAILABLE
    return REJECTED


def error_of_status(status: int, reason: str | None) -> str | None:
    """The status line only: the body is the provider's and may quote a person's data."""
    if status < 400:
        return None
    words = (reason or "").strip()[:60]
    return f"HTTP {status} {words}".rstrip()


def error_of_exception(exc: BaseException, *, timed_out: bool) -> tuple[str, str]:
    """(outcome, words) for a request that got no answer. The exception's text can carry the
    URL; only its type is kept."""
    name = type(exc).__name__
    if timed_out or "timeout" in name.lower() or isinstance(exc, TimeoutError):
        return TIMEOUT, f"no answer in time ({name})"
    return UNAVAILABLE, f"could not be reached ({name})"


def measured(
    provider: str,
    method: str,
    url: str,
    *,
    status: int | None,
    reason: str | None,
    error: BaseException | None,
    timed_out: bool,
    latency_ms: int,
) -> ProviderCall:
    """One request's record, in the caller's scope."""
    where = _SCOPE.get()
    words: str | None
    if error is not None or status is None:
        outcome, words = error_of_exception(error or RuntimeError("no answer"), timed_out=timed_out)
        http_status = None
    else:
        outcome, words, http_status = (
            outcome_of_status(status),
            error_of_status(status, reason),
            status,
        )
    return ProviderCall(
        provider=provider,
        operation=where.operation or operation_of(method, url),
        outcome=outcome,
        http_status=http_status,
        latency_ms=latency_ms,
        error=words,
        at=dt.datetime.now(dt.UTC),
        workspace_id=where.workspace_id,
        integration_id=where.integration_id,
        job_id=where.job_id,
    )
