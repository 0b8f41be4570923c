"""What every webhook route shares: the raw body, the rejection that becomes a 4xx (logged and
counted, never with the body or a secret), the lookups of the receiving integration, body
parsing, and storing through the inbox.

Most routes are plain (sync) functions: FastAPI runs them in its thread pool, so the database
work never blocks the event loop, and each one commits before it returns, so the provider's 2xx
always means "stored". The busiest, a workspace's Stripe events, is async: it verifies on the
event loop with a cached secret and hands the event to the batching writer (backend/api/
intake.py), which answers once the event is committed, so its 2xx means "stored" too.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from anyio import to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.api.limits import read_capped
from backend.api.metrics import metrics_of
from backend.api.webhooks.intake import IntakeWriter
from backend.config import Settings, get_settings
from backend.connections import credentials
from backend.db import get_engine, session_scope
from backend.platform import inbox
from backend.security.crypto import CryptoError
from backend.security.webhooks import SignatureError
from models import Integration, IntegrationStatus, Workspace, utcnow

log = structlog.get_logger("sidecar")

# Column widths of inbound_events: longer values are refused with a 400 rather than failing
# (PostgreSQL) or being stored differently on each database.
MAX_EXTERNAL_ID = 128
MAX_EVENT_TYPE = 80
_MAX_SLUG = 64
_MAX_INT4 = 2**31 - 1


class Received(BaseModel):
    received: bool = True
    duplicate: bool = False


class BatchReceived(BaseModel):
    received: bool = True
    stored: int
    duplicates: int


class Problem(BaseModel):
    detail: str


_ERRORS: dict[int, dict[str, Any]] = {
    400: {"model": Problem, "description": "Malformed body: not JSON, or no event id or type."},
    401: {"model": Problem, "description": "Missing or invalid signature, or a stale timestamp."},
    404: {"model": Problem, "description": "Unknown workspace or integration, or not connected."},
    413: {"model": Problem, "description": "Body larger than the limit (1 MiB by default)."},
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route (all four unless narrowed)."""
    return {code: _ERRORS[code] for code in codes or tuple(_ERRORS)}


# The routes read the raw bytes (signatures cover them exactly), so FastAPI cannot infer the
# body; this documents it for the OpenAPI document and for the fuzzer that reads it.
JSON_OBJECT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
JSON_ARRAY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}},
    }
}


@dataclass(frozen=True, slots=True)
class Intake:
    """Who a request is for; the fields every rejection is logged with."""

    provider: str
    workspace: str | None = None


class Rejected(Exception):
    """A webhook refused with a 4xx. ``reason`` goes to the caller and the log."""

    def __init__(self, status: int, reason: str, intake: Intake, code: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.intake = intake
        self.code = code


def _on_rejected(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Rejected)
    log.warning(
        "webhook rejected",
        provider=exc.intake.provider,
        workspace=exc.intake.workspace,
        status=exc.status,
        reason=exc.reason,
    )
    if exc.status == 401:
        metrics_of(request).verification_failures.labels(
            provider=exc.intake.provider, reason=exc.code
        ).inc()
    return JSONResponse({"detail": exc.reason}, status_code=exc.status)


def install(app: FastAPI) -> None:
    app.add_exception_handler(Rejected, _on_rejected)


async def raw_body(request: Request) -> bytes:
    """The exact bytes received: signatures cover them, so nothing may parse them first."""
    return await read_capped(request, app_settings(request).max_webhook_body_bytes)


def app_settings(request: Request) -> Settings:
    settings: Settings | None = getattr(request.app.state, "settings", None)
    return settings or get_settings()


def request_time(request: Request) -> float:
    """Now, in Unix seconds, for the timestamp windows; an app may set ``state.clock`` (tests
    pin it so that "301 s in the future" cannot drift into the window while a test runs)."""
    clock: Callable[[], float] = getattr(request.app.state, "clock", time.time)
    return clock()


async def intake_engine(request: Request) -> Engine:
    """``get_engine`` (or an app's override of it, as tests set) without a trip through the
    thread pool that FastAPI gives every plain-function dependency: it is a cached lookup."""
    provider: Callable[[], Engine] = request.app.dependency_overrides.get(get_engine, get_engine)
    return provider()


RawBody = Annotated[bytes, Depends(raw_body)]
AppSettings = Annotated[Settings, Depends(app_settings)]
Now = Annotated[float, Depends(request_time)]
IntakeEngine = Annotated[Engine, Depends(intake_engine)]


# -- finding the receiver ----------------------------------------------------------------------


def _connected(integration: Integration | None) -> bool:
    # An integration in "error" (a failed health check) still receives its provider's events.
    return integration is not None and integration.status is not IntegrationStatus.INACTIVE


def workspace_integration(
    session: Session, intake: Intake, *, slug: str, providers: Iterable[str]
) -> Integration:
    """The workspace's connected integration among ``providers`` (first connected wins)."""
    # NUL and over-long values would make PostgreSQL raise rather than match nothing.
    workspace_id = None
    if len(slug) <= _MAX_SLUG and "\x00" not in slug:
        workspace_id = session.scalar(select(Workspace.id).where(Workspace.slug == slug))
    if workspace_id is None:
        raise Rejected(404, "unknown workspace", intake, "unknown_workspace")
    wanted = list(providers)
    rows = {
        row.provider: row
        for row in session.scalars(
            select(Integration).where(
                Integration.workspace_id == workspace_id, Integration.provider.in_(wanted)
            )
        )
    }
    for provider in wanted:
        row = rows.get(provider)
        if row is not None and _connected(row):
            return row
    raise Rejected(
        404, f"{intake.provider} is not connected in this workspace", intake, "not_connected"
    )


def integration_by_id(session: Session, intake: Intake, raw_id: str) -> Integration:
    row = None
    if raw_id.isascii() and raw_id.isdigit() and 0 < len(raw_id) <= 10 and int(raw_id) <= _MAX_INT4:
        row = session.get(Integration, int(raw_id))
    if row is None or not _connected(row):
        raise Rejected(404, "unknown or disconnected integration", intake, "unknown_integration")
    return row


def secret_of(integration: Integration, intake: Intake, key: str) -> Any:
    """One entry of the integration's sealed secrets; 404 when it was never configured."""
    try:
        value = credentials.unseal(integration).get(key)
    except CryptoError:
        # Our key ring cannot open it (a retired key): nothing the sender can fix. Logged for
        # the operator; the provider sees "not connected" and retries later.
        log.error(
            "integration secrets unreadable",
            provider=integration.provider,
            workspace=intake.workspace,
            integration_id=integration.id,
        )
        value = None
    if not value:
        raise Rejected(404, f"no {key} configured for {intake.provider}", intake, "not_configured")
    return value


@dataclass(frozen=True, slots=True)
class Receiver:
    """What verifying a workspace's webhook needs: who receives it and the secret."""

    workspace_id: int
    integration_id: int
    secret: Any


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


def _lookup_receiver(
    engine: Engine, intake: Intake, slug: str, providers: tuple[str, ...], key: str
) -> Receiver:
    with session_scope(engine) as session:
        integration = workspace_integration(session, intake, slug=slug, providers=providers)
        return Receiver(
            integration.workspace_id, integration.id, secret_of(integration, intake, key)
        )


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
    ``workspace_integration`` and ``secret_of``), then run ``check(secret)`` (401s as
    ``verified``). Receivers come from the app's ReceiverCache when fresh, without touching
    the database; a lookup runs in the thread pool."""
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
        lambda: to_thread.run_sync(_lookup_receiver, engine, intake, slug, wanted, key),
    )
    verified(intake, lambda: check(receiver.secret))
    return receiver


def verified(intake: Intake, check: Callable[[], object]) -> None:
    """Run a verifier; its SignatureError becomes a 401 with the verifier's reason."""
    try:
        check()
    except SignatureError as exc:
        raise Rejected(401, exc.reason, intake, exc.code) from exc


# -- the body ------------------------------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _storable(value: Any) -> bool:
    """False for strings that PostgreSQL's JSONB refuses (NUL, lone surrogates)."""
    stack = deque([value])
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            # isprintable() first: cheap, and a surrogate is never printable.
            if "\x00" in item or (not item.isprintable() and _has_surrogate(item)):
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_json(body: bytes, intake: Intake) -> Any:
    """The body as JSON (RFC 8259: no NaN/Infinity) that every database can store."""
    return parse_json_text(body, intake)[0]


def parse_json_text(body: bytes, intake: Intake) -> tuple[Any, str]:
    """The body as JSON (see parse_json) and as the text it was parsed from."""
    try:
        # Exactly what json.loads does with bytes (UTF-8, -16 or -32), keeping the text.
        document = body.decode(json.detect_encoding(body), "surrogatepass")
        value = json.loads(document, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8 and integers too long to convert.
        raise Rejected(400, "body is not valid JSON", intake, "malformed_body") from exc
    # JSON text can only spell NUL or a surrogate with a \u escape, or smuggle a surrogate in
    # as ill-formed UTF-8 (which decoding above lets through): without either, every string
    # in it is storable, and the walk over every value can be skipped.
    if ("\\u" in document or _has_surrogate(document)) and not _storable(value):
        raise Rejected(
            400,
            "body contains characters that cannot be stored (NUL or a lone surrogate)",
            intake,
            "malformed_body",
        )
    return value, document


def json_object(body: bytes, intake: Intake) -> dict[str, Any]:
    return json_object_text(body, intake)[0]


def json_object_text(body: bytes, intake: Intake) -> tuple[dict[str, Any], str]:
    """The body as a JSON object, and the text it was parsed from."""
    value, document = parse_json_text(body, intake)
    if not isinstance(value, dict):
        raise Rejected(400, "body must be a JSON object", intake, "malformed_body")
    return value, document


def text_field(
    payload: dict[str, Any], key: str, intake: Intake, *, max_length: int, where: str = "body"
) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise Rejected(400, f"{where} has no {key!r} string", intake, "malformed_body")
    if len(value) > max_length:
        raise Rejected(
            400, f"{where} {key!r} is longer than {max_length} characters", intake, "malformed_body"
        )
    return value


def store(
    session: Session,
    intake: Intake,
    *,
    external_id: str,
    event_type: str,
    workspace_id: int | None,
    payload: dict[str, Any],
) -> bool:
    """Insert the event and its job; False for a duplicate. The caller's transaction commits."""
    stored = inbox.record(
        session,
        provider=intake.provider,
        external_id=external_id,
        event_type=event_type,
        workspace_id=workspace_id,
        payload=payload,
    )
    log.info(
        "webhook stored" if stored else "webhook duplicate",
        provider=intake.provider,
        workspace=intake.workspace,
        event_type=event_type,
    )
    return stored


def intake_writer(request: Request, engine: Engine) -> IntakeWriter:
    """The app's batching writer for ``engine`` (see backend/api/intake.py)."""
    writers: dict[Engine, IntakeWriter] | None = getattr(request.app.state, "intake", None)
    if writers is None:
        writers = request.app.state.intake = {}
    writer = writers.get(engine)
    if writer is None:
        settings = app_settings(request)
        writer = writers.setdefault(
            engine, IntakeWriter(engine, writers=settings.webhook_intake_writers)
        )
    return writer


async def store_verified(
    request: Request,
    engine: Engine,
    intake: Intake,
    *,
    external_id: str,
    event_type: str,
    workspace_id: int | None,
    payload: dict[str, Any],
    payload_json: str | None = None,
) -> bool:
    """``store``, for async routes: committed (with others that arrived meanwhile) when this
    returns; False for a duplicate."""
    event = inbox.Incoming(
        intake.provider, external_id, event_type, workspace_id, payload, payload_json, utcnow()
    )
    stored = await intake_writer(request, engine).record(event)
    log.info(
        "webhook stored" if stored else "webhook duplicate",
        provider=intake.provider,
        workspace=intake.workspace,
        event_type=event_type,
    )
    return stored
