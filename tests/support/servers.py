"""Serve an ASGI app on a free loopback port in a background thread, for the length of a test:
real HTTP, so SDKs talk to it exactly as they would to a provider."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response

from tests.support.pgserver import free_port
from tests.support.tls import ServerCertificate


@contextmanager
def serve(app: Any, *, tls: ServerCertificate | None = None) -> Iterator[str]:
    """Yields the base URL (https with ``tls``: a certificate for a name, served on 127.0.0.1)."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        ssl_certfile=tls.certfile if tls else None,
        ssl_keyfile=tls.keyfile if tls else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """Records every request; answers with ``statuses`` in turn (then 200), to exercise retries."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        with self.lock:
            raise AssertionError(f"expected {count} webhook requests, got {len(self.received)}")

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def receive(path: str, request: Request) -> Response:
            body = await request.body()
            with self.lock:
                self.received.append(Received("/" + path, dict(request.headers), body))
                status = self.statuses.pop(0) if self.statuses else 200
            return Response(status_code=status)

        return app


@contextmanager
def webhook_receiver(tls: ServerCertificate | None = None) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    with serve(receiver.app(), tls=tls) as url:
        receiver.url = url
        yield receiver
