"""The request body size limit: 413 for a declared Content-Length over the cap, and the same
while reading, for chunked bodies that declare nothing.

Tested in tests/api/webhooks/test_intake.py and tests/api/test_fuzz.py (bodies over the cap)."""

from __future__ import annotations

import json

import structlog
from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("sidecar")


class BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's own handling (even inside its body parsing) answers 413
    rather than 400 or 500."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"body larger than {limit} bytes")


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            # The server has already refused a malformed Content-Length; be lenient anyway.
            return int(value) if value.isdigit() else None
    return None


async def read_capped(request: Request, max_bytes: int) -> bytes:
    """The whole body, or BodyTooLarge: refused on its Content-Length before reading a byte,
    and counted while reading when it declares none (chunked)."""
    declared = _declared_length(request.scope.get("headers", []))
    if declared is not None and declared > max_bytes:
        raise BodyTooLarge(max_bytes)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise BodyTooLarge(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


class BodySizeLimit:
    """Caps every route's reading, not only the webhooks' (pure ASGI: nothing is buffered
    before it is counted)."""

    def __init__(self, app: ASGIApp, max_bytes: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Path prefixes allowed more (SendGrid Inbound Parse: mail with its attachments, which
        # its route streams without keeping).
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Declared lengths are checked by read_capped after routing, so the 413 is counted
        # under its route; this only caps what any route reads.
        path = str(scope.get("path", ""))
        limit = next(
            (cap for prefix, cap in self.larger.items() if path.startswith(prefix)),
            self.max_bytes,
        )
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge:
            # FastAPI normally answers the 413 itself; this covers a read outside its handling.
            if started:
                raise
            await self._reject(scope, send, limit)

    async def _reject(self, scope: Scope, send: Send, limit: int) -> None:
        path = str(scope.get("path", ""))
        # A larger route's path may carry a secret (Inbound Parse): its prefix is logged.
        path = next((prefix for prefix in self.larger if path.startswith(prefix)), path)
        log.warning("request rejected", reason="body too large", path=path, status=413)
        body = json.dumps({"detail": f"body larger than {limit} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
