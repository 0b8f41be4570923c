"""A total deadline on every call to a provider, whatever client library makes it.

The clients' own timeouts are per operation: httpx's, urllib's and httplib2's read timeout
starts again with every byte that arrives, so a server that drips its answer holds a call for
as long as it likes (and, before issue 13, whatever the caller held with it). So every request
an adapter makes runs inside ``within(provider, seconds)``:

- the block registers, through the client's own extension points, every socket the call uses
  (``watch``): httpx through a network backend of ours (``Client``, ``http_client``; the Stripe
  SDK's ``HTTPXClient`` too, and a proxy the environment names), urllib through a handler
  (``urllib_opener``: SendGrid's python_http_client), httplib2 through an ``Http`` subclass
  (``Http``: Google's clients);
- a watchdog thread shuts those sockets down when the deadline passes; the client's blocked
  read returns at once with an error, and the block raises ``ProviderTimeout`` (an "unavailable"
  outcome) saying how long the provider had. A socket the call opens after that is shut down
  at once, so a client that retries cannot start again.

Blocks nest: an inner block cannot outlast its outer one (a connection test bounds all of its
requests). An answer that arrived in time is returned even if the deadline passes as the block
ends.

Tested in tests/integrations/test_deadline.py (each adapter against a server that drips its
answer).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import http.client
import itertools
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore
import httplib2
import httpx

from backend.integrations import call_log
from backend.integrations.errors import ProviderTimeout


class Deadline:
    """One block's deadline and the sockets its calls used; ``slug`` names the provider in
    the call log (``call_log``), whose records the same client wrappers make."""

    def __init__(
        self, provider: str, seconds: float, parent: Deadline | None, slug: str | None = None
    ) -> None:
        self.provider = provider
        self.slug: str | None = slug or (parent.slug if parent is not None else None)
        self.seconds = seconds
        self.parent = parent
        self.at = time.monotonic() + seconds
        if parent is not None:
            self.at = min(self.at, parent.at)
        self.expired = False
        self._done = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self._done:
                return
            if not self.expired:
                if sock not in self._sockets:
                    self._sockets.append(sock)
                return
        _shut(sock)

    def expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)

    def finish(self) -> None:
        with self._lock:
            self._done = True
            self._sockets = []


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, not SSLSocket's (which drops its TLS object under the
    # thread reading it): the blocked read then sees the end of the stream.
    with contextlib.suppress(OSError):  # closed already, or never connected
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread that expires deadlines when their time comes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="provider-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                at, _, deadline = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            deadline.expire()


_WATCHDOG = _Watchdog()
_CURRENT: ContextVar[Deadline | None] = ContextVar("provider_deadline", default=None)


def current() -> Deadline | None:
    return _CURRENT.get()


def watch(sock: socket.socket) -> socket.socket:
    """Let the running blocks' deadlines shut ``sock`` down (no block: nothing to do)."""
    deadline = _CURRENT.get()
    while deadline is not None:
        deadline.watch(sock)
        deadline = deadline.parent
    return sock


@contextmanager
def within(provider: str, seconds: float, *, slug: str | None = None) -> Iterator[Deadline]:
    """Run a call to ``provider`` that must be over in ``seconds``, reading included; raise
    ``ProviderTimeout`` if it is not (whatever error the client raised on the way out). Each
    request made inside is recorded in the call log under ``slug`` (the registry's name)."""
    deadline = Deadline(provider, seconds, _CURRENT.get(), slug)
    token = _CURRENT.set(deadline)
    _WATCHDOG.arm(deadline)
    try:
        yield deadline
    except Exception:
        # Expired by the watchdog, or its time has come and an outer block's watchdog (same
        # moment) cut the socket first: either way the provider ran out of time.
        if deadline.expired or time.monotonic() >= deadline.at:
            raise ProviderTimeout(
                f"{provider} did not answer within {deadline.seconds:g} s", seconds=seconds
            ) from None
        raise
    finally:
        deadline.finish()
        _CURRENT.reset(token)


def _record(
    method: str,
    url: str,
    started: float,
    *,
    status: int | None = None,
    reason: str | None = None,
    error: BaseException | None = None,
) -> None:
    """One request's outcome into the call log, when made inside a block that names its
    provider (a request outside any block is not a provider call: the sidecar's own probes)."""
    deadline = _CURRENT.get()
    if deadline is None or deadline.slug is None:
        return
    call_log.record(
        call_log.measured(
            deadline.slug,
            method,
            url,
            status=status,
            reason=reason,
            error=error,
            timed_out=deadline.expired or (deadline.parent is not None and deadline.parent.expired),
            latency_ms=round((time.perf_counter() - started) * 1000),
        )
    )


# -- httpx (and the Stripe SDK's HTTPXClient) --------------------------------------------------


class _Stream(httpcore.NetworkStream):
    """A connection whose socket the running deadline watches whenever it is used (a pooled
    connection serves later calls, each with its own deadline)."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream
        self._watch()

    def _watch(self) -> None:
        sock = self._stream.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            watch(sock)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._watch()
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._watch()
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """The pool's own backend, whose connections are watched."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(
            self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class Transport(httpx.HTTPTransport):
    """httpx's transport (straight to the provider, or through a proxy) over connections the
    running deadline watches."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # httpx takes no network backend, httpcore's pool (and proxy) does: the one the pool
        # was built with is wrapped in place. httpx keeps the pool in ``_pool`` (since 0.18),
        # httpcore its backend in ``_network_backend``; the drip tests fail if either moves.
        pool = self._pool
        pool._network_backend = _Backend(pool._network_backend)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        # Measured to the answer's head: the body is read by the caller, after this returns.
        started = time.perf_counter()
        try:
            response = super().handle_request(request)
        except BaseException as exc:
            _record(request.method, str(request.url), started, error=exc)
            raise
        _record(
            request.method,
            str(request.url),
            started,
            status=response.status_code,
            reason=response.reason_phrase,
        )
        return response


class Client(httpx.Client):
    """httpx's client whose every transport, a proxy's that the environment names included,
    is a ``Transport``."""

    def _init_transport(  # type: ignore[override]
        self, transport: httpx.BaseTransport | None = None, **kwargs: Any
    ) -> httpx.BaseTransport:
        return transport if transport is not None else Transport(**kwargs)

    def _init_proxy_transport(  # type: ignore[override]
        self, proxy: httpx.Proxy, **kwargs: Any
    ) -> httpx.BaseTransport:
        return Transport(proxy=proxy, **kwargs)


def http_client(timeout: httpx.Timeout | float, **kwargs: Any) -> httpx.Client:
    """An httpx client for calls made inside ``within``."""
    return Client(timeout=timeout, **kwargs)


# -- urllib (SendGrid's python_http_client) ----------------------------------------------------


@functools.cache
def _watched_connection(base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
    class Watched(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # http.client's documented seam for making the socket: watched from its first byte.
            self._create_connection = lambda *a, **k: watch(socket.create_connection(*a, **k))

        def connect(self) -> None:
            super().connect()
            watch(self.sock)  # the TLS socket that replaced the plain one

    return Watched


def _open_measured(opener: Any, http_class: Any, req: Any, **kwargs: Any) -> Any:
    started = time.perf_counter()
    try:
        response = opener(_watched_connection(http_class), req, **kwargs)
    except BaseException as exc:
        _record(req.get_method(), req.full_url, started, error=exc)
        raise
    # An error status is still an answer here (urllib raises HTTPError later, in its processor).
    _record(req.get_method(), req.full_url, started, status=response.status, reason=response.reason)
    return response


class _HTTPHandler(urllib.request.HTTPHandler):
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return _open_measured(super().do_open, http_class, req, **kwargs)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return _open_measured(super().do_open, http_class, req, **kwargs)


def urllib_opener() -> urllib.request.OpenerDirector:
    """urllib's opener over connections the running deadline watches."""
    return urllib.request.build_opener(_HTTPHandler, _HTTPSHandler)


# -- httplib2 (google-api-python-client, google-auth-httplib2) --------------------------------


class _HTTPConnection(httplib2.HTTPConnectionWithTimeout):  # type: ignore[misc]
    def connect(self) -> None:
        super().connect()
        watch(self.sock)


class _HTTPSConnection(httplib2.HTTPSConnectionWithTimeout):  # type: ignore[misc]
    def connect(self) -> None:
        super().connect()
        watch(self.sock)


class Http(httplib2.Http):  # type: ignore[misc]
    """httplib2's client over connections the running deadline watches (a kept connection is
    watched by each request that uses it)."""

    def request(self, uri: str, *args: Any, **kwargs: Any) -> Any:
        for connection in list(self.connections.values()):
            if getattr(connection, "sock", None) is not None:
                watch(connection.sock)
        if kwargs.get("connection_type") is None and len(args) < 5:
            https = uri.lower().startswith("https:")
            kwargs["connection_type"] = _HTTPSConnection if https else _HTTPConnection
        method = str(args[0] if args else kwargs.get("method") or "GET")
        started = time.perf_counter()
        try:
            response, content = super().request(uri, *args, **kwargs)
        except BaseException as exc:
            _record(method, uri, started, error=exc)
            raise
        _record(method, uri, started, status=int(response.status), reason=response.reason)
        return response, content
