"""What every webhook route shares: the raw body, the rejection that becomes a 4xx (logged and
counted, never with the body or a secret), finding the receiving integration (through
``backend.connections.receivers``, its refusals turned into 404s), body parsing, and storing
through the inbox (``backend.platform.inbox``). Routes query nothing themselves.

Most routes are plain (sync) functions: FastAPI runs them in its thread pool, so the database
work never blocks the event loop, and each store commits before it returns, so the provider's
2xx always means "stored". The busiest, a workspace's Stripe events, is async: it verifies on
the event loop with a cached secret (``receivers.ReceiverCache``) and hands the event to the
batching writer (``intake.py``), which answers once the event is committed, so its 2xx means
"stored" too.

Tested in tests/api/webhooks/test_intake.py (what every route shares) and each provider's tests.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine

from backend.api.limits import read_capped
from backend.api.metrics import metrics_of
from backend.api.webhooks.intake import IntakeWriter
from backend.config import Settings, get_settings
from backend.connections import receivers
from backend.connections.receivers import Receiver
from backend.db import get_engine
from backend.platform import inbox
from backend.security.webhooks import SignatureError

log = structlog.get_logger("sidecar")

# Column widths of inbound_events: longer values are refused with a 400 rather than failing
# (PostgreSQL) or being stored differently on each database.
MAX_EXTERNAL_ID = 128
MAX_EVENT_TYPE = 80


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


def workspace_receiver(
    engine: Engine, intake: Intake, *, slug: str, providers: Iterable[str], key: str | None
) -> Receiver:
    """The workspace's receiving integration among ``providers`` (first connected wins) with
    its secret ``key`` (none when ``key`` is None); the lookup's refusals as 404s."""
    try:
        return receivers.for_workspace(engine, slug=slug, providers=providers, secret=key)
    except receivers.NoReceiver as exc:
        raise no_receiver(exc, intake) from exc


def receiver_by_id(engine: Engine, intake: Intake, raw_id: str, *, key: str) -> Receiver:
    """The integration a path's id names, if it receives, with its secret ``key``."""
    # Not a decimal id of at most 10 digits: no integration, and no query to find that out.
    if not (raw_id.isascii() and raw_id.isdigit() and 0 < len(raw_id) <= 10):
        raise no_receiver(receivers.NoReceiver("unknown_integration"), intake)
    try:
        return receivers.by_id(engine, int(raw_id), secret=key)
    except receivers.NoReceiver as exc:
        raise no_receiver(exc, intake) from exc


def no_receiver(exc: receivers.NoReceiver, intake: Intake) -> Rejected:
    """The 404 that says why nobody receives a webhook (its code goes to the log)."""
    if exc.why == "unknown_workspace":
        return Rejected(404, "unknown workspace", intake, exc.why)
    if exc.why == "not_connected":
        return Rejected(
            404, f"{intake.provider} is not connected in this workspace", intake, exc.why
        )
    if exc.why == "unknown_integration":
        return Rejected(404, "unknown or disconnected integration", intake, exc.why)
    # Not configured: logged as the integration found (its provider; a route addressed by id
    # learns the workspace from it).
    provider = exc.provider or intake.provider
    found = Intake(
        provider=provider,
        workspace=intake.workspace if intake.workspace is not None else str(exc.workspace_id),
    )
    return Rejected(404, f"no {exc.key} configured for {provider}", found, exc.why)


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
    engine: Engine,
    intake: Intake,
    *,
    external_id: str,
    event_type: str,
    workspace_id: int | None,
    integration_id: int | None,
    payload: dict[str, Any],
) -> bool:
    """Store the event and its job, committed when this returns; False for a duplicate (of
    an event this integration received; None: the platform's own account)."""
    event = inbox.Incoming(
        intake.provider, external_id, event_type, workspace_id, integration_id, payload
    )
    stored = inbox.record_committed(engine, event)
    _log_stored(intake, event_type, stored)
    return stored


def store_all(
    engine: Engine,
    intake: Intake,
    events: Iterable[tuple[str, str, dict[str, Any]]],
    *,
    workspace_id: int | None,
    integration_id: int | None,
) -> int:
    """Store ``(external_id, event_type, payload)`` events and their jobs in one transaction,
    committed when this returns: how many were new (the rest were duplicates)."""
    incoming = [
        inbox.Incoming(
            intake.provider, external_id, event_type, workspace_id, integration_id, payload
        )
        for external_id, event_type, payload in events
    ]
    outcomes = inbox.record_all_committed(engine, incoming)
    for event, stored in zip(incoming, outcomes, strict=True):
        _log_stored(intake, event.event_type, stored)
    return sum(outcomes)


def _log_stored(intake: Intake, event_type: str, stored: bool) -> None:
    log.info(
        "webhook stored" if stored else "webhook duplicate",
        provider=intake.provider,
        workspace=intake.workspace,
        event_type=event_type,
    )


def intake_writer(request: Request, engine: Engine) -> IntakeWriter:
    """The app's batching writer for ``engine`` (see intake.py)."""
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
    integration_id: int | None,
    payload: dict[str, Any],
    payload_json: str | None = None,
) -> bool:
    """``store``, for async routes: committed (with others that arrived meanwhile) when this
    returns; False for a duplicate."""
    # Received now, not when its batch is written.
    received_at = dt.datetime.now(dt.UTC)
    event = inbox.Incoming(
        intake.provider,
        external_id,
        event_type,
        workspace_id,
        integration_id,
        payload,
        payload_json,
        received_at,
    )
    stored = await intake_writer(request, engine).record(event)
    _log_stored(intake, event_type, stored)
    return stored
