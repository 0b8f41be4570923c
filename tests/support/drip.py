"""A tiny HTTP server on a loopback port that answers every request one byte at a time: status
line, headers and body, ``interval`` seconds apart, for ``duration`` seconds. Each byte restarts
a client's read timeout, so only a deadline on the whole call ends such a request."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"


@dataclass
class Drip:
    url: str
    # Requests that reached the server, and how many of them it answered to the end (the
    # client hung up on the others).
    requests: int = 0
    finished: int = 0


@contextmanager
def dripping_server(*, interval: float = 0.5, duration: float = 60.0) -> Iterator[Drip]:
    drip = Drip(url="")
    stop = threading.Event()
    lock = threading.Lock()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            sock.settimeout(5)
            seen = b""
            while b"\r\n\r\n" not in seen:  # the request's head is enough to start answering
                chunk = sock.recv(4096)
                if not chunk:
                    return
                seen += chunk
            with lock:
                drip.requests += 1
            ends = time.monotonic() + duration
            body = _ANSWER + b" " * 100000
            for i in range(len(body)):
                if stop.is_set() or time.monotonic() > ends:
                    return
                try:
                    sock.sendall(body[i : i + 1])
                except OSError:
                    return  # the client hung up: its deadline ended the call
                stop.wait(interval)
            with lock:
                drip.finished += 1

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    drip.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield drip
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
