"""What every webhook route shares: the raw body, the rejection that becomes a 4xx (logged and
counted, never with the body or a secret), the lookups of the receiving integration, body
parsing, and storing through the inbox.

The routes are plain (sync) functions: FastAPI runs them in its thread pool, so the database
work never blocks the event loop, and each one commits before it returns, so the provider's 2xx
always means "stored".
"""

from __future__ import annotations

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
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.api.limits import read_capped
from backend.api.metrics import metrics_of
from backend.config import Settings, get_settings
from backend.security.crypto import CryptoError
from backend.security.webhooks import SignatureError
from backend.services import credentials, inbox
from models import Integration, IntegrationStatus, Workspace

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


RawBody = Annotated[bytes, Depends(raw_body)]
AppSettings = Annotated[Settings, Depends(app_settings)]
Now = Annotated[float, Depends(request_time)]


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
    try:
        value = json.loads(body, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8 and integers too long to convert.
        raise Rejected(400, "body is not valid JSON", intake, "malformed_body") from exc
    if not _storable(value):
        raise Rejected(
            400,
            "body contains characters that cannot be stored (NUL or a lone surrogate)",
            intake,
            "malformed_body",
        )
    return value


def json_object(body: bytes, intake: Intake) -> dict[str, Any]:
    value = parse_json(body, intake)
    if not isinstance(value, dict):
        raise Rejected(400, "body must be a JSON object", intake, "malformed_body")
    return value


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
