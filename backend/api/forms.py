"""The lead form on the sidecar: ``POST /forms/{workspace_slug}/leads`` (JSON or form-encoded,
from a business's own website or the hosted form) and ``GET /forms/{workspace_slug}``, the hosted
form for a business without a website (plain HTML, no JavaScript).

- A valid inquiry is stored in the inbox, as a webhook is (durable before the answer, with
  others that arrived meanwhile in one commit: backend/api/webhooks/intake.py), and answered
  202; the inbox's job makes or updates the lead within a second or so
  (backend/leads/capture.py). The answer is the same for a new address and a known one, so the
  form tells nobody who is already a lead. Why, in docs/DESIGN.md ("Lead capture").
- A body over 16 KiB is refused (413) before it is parsed.
- Each invalid field gets its own message (422 ``{"errors": {field: message}}``; the hosted form
  shows them next to the fields, the values kept).
- ``website`` is a honeypot, hidden from people: a submission that fills it is answered as a
  success (202) and stored nowhere, so a bot learns nothing.
- Each client address may submit ``RATE_LIMIT`` times per ``RATE_WINDOW`` seconds per workspace
  (429 with Retry-After). The count is held in the process (the sidecar runs as one process;
  docs/DESIGN.md, "Lead capture").
- CORS: the workspace's ``lead_form_origins`` get the CORS headers (and their preflight); any
  other origin gets an answer without them, which a browser refuses to hand to the page.
- A request that prefers HTML (a browser's form post) gets a page; anything else gets JSON.

Tested in tests/api/test_forms.py.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from backend.api.limits import read_capped
from backend.api.webhooks.common import Intake, store_verified
from backend.db import get_engine, session_scope
from backend.leads import capture
from models import Workspace

router = APIRouter(tags=["leads"])
log = structlog.get_logger("forms")

EngineDep = Annotated[Engine, Depends(get_engine)]
MAX_BODY_BYTES = 16 * 1024
RATE_LIMIT = 10
RATE_WINDOW = 600.0
HONEYPOT = "website"
FIELDS = (
    "name",
    "email",
    "phone",
    "company",
    "service_type",
    "event_date",
    "message",
    "marketing_consent",
)
LIMITS = {
    "name": 120,
    "email": 254,
    "phone": 40,
    "company": 120,
    "service_type": 60,
    "message": 5000,
}
SERVICE_TYPES = ("recital media", "event photography", "video production", "other")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^[0-9+()./ \-]{5,40}$")
_TRUE = {"1", "true", "on", "yes"}
THANKS = "Thank you: we received your inquiry and will be in touch soon."

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


class RateLimit:
    """A sliding window of submission times per (client address, workspace), in this process."""

    def __init__(
        self,
        limit: int = RATE_LIMIT,
        window: float = RATE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._seen: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str, workspace: str) -> int | None:
        """Count a submission: ``None`` if allowed, else the seconds until one is."""
        now = self.clock()
        with self._lock:
            if len(self._seen) > 100_000:
                self._forget(now)
            times = self._seen.setdefault((client, workspace), deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.limit:
                return max(1, int(times[0] + self.window - now + 0.999))
            times.append(now)
            return None

    def _forget(self, now: float) -> None:
        for key in [k for k, v in self._seen.items() if not v or v[-1] <= now - self.window]:
            del self._seen[key]


def _limiter(request: Request) -> RateLimit:
    state = request.app.state
    if getattr(state, "lead_rate_limit", None) is None:
        state.lead_rate_limit = RateLimit()
    limiter: RateLimit = state.lead_rate_limit
    return limiter


# A workspace the form posts to: id, name, slug, allowed origins.
_Found = tuple[int, str, str, list[str]]

# Built once: run on the session's connection (Core), it skips the ORM's per-call work.
_BY_SLUG = select(Workspace.id, Workspace.name, Workspace.slug, Workspace.lead_form_origins).where(
    Workspace.slug == bindparam("v_slug", type_=Workspace.slug.type)
)


def _lookup(session: Session, slug: str) -> _Found | None:
    row = session.connection().execute(_BY_SLUG, {"v_slug": slug}).first()
    return (row.id, row.name, row.slug, list(row.lead_form_origins or [])) if row else None


def _workspace(engine: Engine, slug: str) -> _Found | None:
    with session_scope(engine) as session:
        return _lookup(session, slug)


class WorkspaceCache:
    """The lead form's workspace look-ups, each kept ``TTL`` seconds in the process: a burst
    of submissions costs one query a workspace, not one each. A changed list of allowed origins
    (or a new workspace) is seen within ``TTL``."""

    TTL = 2.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._found: dict[tuple[Engine, str], tuple[float, _Found | None]] = {}

    async def get(self, engine: Engine, slug: str) -> _Found | None:
        now = self.clock()
        kept = self._found.get((engine, slug))
        if kept is not None and kept[0] > now:
            return kept[1]
        found = await run_in_threadpool(_workspace, engine, slug)
        if len(self._found) > 10_000:  # slugs made up by a caller: forget them all
            self._found.clear()
        self._found[(engine, slug)] = (now + self.TTL, found)
        return found


def _workspaces(request: Request) -> WorkspaceCache:
    state = request.app.state
    if getattr(state, "lead_form_workspaces", None) is None:
        state.lead_form_workspaces = WorkspaceCache()
    cache: WorkspaceCache = state.lead_form_workspaces
    return cache


def _cors(request: Request, origins: list[str]) -> dict[str, str]:
    origin = request.headers.get("origin")
    if origin and origin.rstrip("/") in {o.rstrip("/") for o in origins}:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {"Vary": "Origin"} if origin else {}


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _unknown(slug: str) -> str:
    return f"no workspace {slug!r} takes inquiries here: check the form's address"


def validate(fields: dict[str, Any]) -> tuple[capture.Inquiry | None, dict[str, str]]:
    """The inquiry, or each invalid field's message."""
    errors: dict[str, str] = {}
    text: dict[str, str] = {}
    for name in FIELDS:
        value = fields.get(name)
        if name == "marketing_consent":
            continue
        if value is None:
            text[name] = ""
        elif not isinstance(value, str):
            errors[name] = "must be text"
            text[name] = ""
        else:
            text[name] = value.strip()
        limit = LIMITS.get(name)
        if limit and len(text[name]) > limit:
            errors[name] = f"must be at most {limit} characters"
    if not text["name"]:
        errors.setdefault("name", "please tell us your name")
    if not text["email"]:
        errors.setdefault("email", "please give an e-mail address we can answer")
    elif not _EMAIL.match(text["email"]):
        errors.setdefault("email", "this does not look like an e-mail address")
    if text["phone"] and not _PHONE.match(text["phone"]):
        errors.setdefault("phone", "use digits, spaces and + - ( ) only")
    event_date: dt.date | None = None
    if text["event_date"]:
        try:
            event_date = dt.date.fromisoformat(text["event_date"])
        except ValueError:
            errors.setdefault("event_date", "use a date like 2027-05-03")
    consent = fields.get("marketing_consent")
    if isinstance(consent, bool):
        agreed = consent
    elif consent is None or isinstance(consent, str):
        agreed = (consent or "").strip().lower() in _TRUE
    else:
        errors["marketing_consent"] = "must be true or false"
        agreed = False
    if errors:
        return None, errors
    return (
        capture.Inquiry(
            name=text["name"],
            email=text["email"],
            phone=text["phone"] or None,
            company=text["company"] or None,
            service_type=text["service_type"] or None,
            event_date=event_date,
            message=text["message"] or None,
            marketing_consent=agreed,
        ),
        {},
    )


def _parse(request: Request, body: bytes) -> dict[str, Any] | None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            parsed = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return None
        return parsed if isinstance(parsed, dict) else None
    if kind in ("application/x-www-form-urlencoded", ""):
        try:
            pairs = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return None
        return {key: values[-1] for key, values in pairs.items()}
    return None


def _page(
    template: str, status: int = 200, headers: dict[str, str] | None = None, **values: Any
) -> HTMLResponse:
    body = _templates.get_template(template).render(**values)
    return HTMLResponse(body, status_code=status, headers=headers)


def _form(
    name: str,
    slug: str,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return _page(
        "lead_form.html",
        status,
        headers,
        business_name=name,
        action=f"/forms/{slug}/leads",
        values=values or {},
        errors=errors or {},
        service_types=SERVICE_TYPES,
        honeypot=HONEYPOT,
    )


@router.get("/forms/{workspace_slug}", response_class=HTMLResponse)
def hosted_form(workspace_slug: str, engine: EngineDep) -> HTMLResponse:
    """The hosted form: it posts, form-encoded, to this workspace's lead endpoint."""
    found = _workspace(engine, workspace_slug)
    if found is None:
        return _page(
            "lead_message.html", 404, title="Form not found", text=_unknown(workspace_slug)
        )
    return _form(found[1], found[2])


@router.options("/forms/{workspace_slug}/leads", status_code=204)
def preflight(workspace_slug: str, request: Request, engine: EngineDep) -> Response:
    """CORS preflight: the workspace's allowed origins may post; others get no CORS headers."""
    found = _workspace(engine, workspace_slug)
    if found is None:
        return JSONResponse({"detail": _unknown(workspace_slug)}, status_code=404)
    headers = _cors(request, found[3])
    if "Access-Control-Allow-Origin" in headers:
        headers |= {
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
        }
    return Response(status_code=204, headers=headers)


@router.post(
    "/forms/{workspace_slug}/leads",
    status_code=202,
    responses={
        202: {"description": "The inquiry is stored; its lead is made or updated shortly."},
        400: {"description": "The body is neither JSON nor form-encoded."},
        404: {"description": "No such workspace."},
        413: {"description": "The body is over 16 KiB."},
        422: {"description": "Invalid fields, each with its message."},
        429: {"description": "Too many submissions from this client: see Retry-After."},
        503: {"description": "The database is unavailable: nothing was stored, try again."},
    },
)
async def submit(workspace_slug: str, request: Request, engine: EngineDep) -> Response:
    """A lead's inquiry: JSON or form-encoded. Stored (durably) in the inbox before the answer,
    like a webhook; the inbox's job makes or updates its lead (backend/leads/capture.py)."""
    body = await read_capped(request, MAX_BODY_BYTES)
    html = _wants_html(request)
    found = await _workspaces(request).get(engine, workspace_slug)
    if found is None:
        if html:
            return _page(
                "lead_message.html", 404, title="Form not found", text=_unknown(workspace_slug)
            )
        return JSONResponse({"detail": _unknown(workspace_slug)}, status_code=404)
    workspace_id, name, slug, origins = found
    cors = _cors(request, origins)
    client = request.client.host if request.client else "unknown"
    wait = _limiter(request).retry_after(client, slug)
    if wait is not None:
        log.info("lead form rate limited", workspace=slug, retry_after=wait)
        headers = cors | {"Retry-After": str(wait)}
        text = f"too many submissions from this address; try again in {wait} seconds"
        if html:
            return _page("lead_message.html", 429, headers, title="Please wait a moment", text=text)
        return JSONResponse({"detail": text}, status_code=429, headers=headers)
    fields = _parse(request, body)
    if fields is None:
        return JSONResponse(
            {"detail": "send a JSON object or a form-encoded body"}, status_code=400, headers=cors
        )
    if str(fields.get(HONEYPOT) or "").strip():
        log.info("lead form honeypot filled", workspace=slug)
        return _thanks(html, name, 202, cors)
    inquiry, errors = validate(fields)
    if inquiry is None:
        if html:
            kept = {k: v for k, v in fields.items() if k in FIELDS and isinstance(v, str)}
            return _form(name, slug, values=kept, errors=errors, status=422, headers=cors)
        return JSONResponse(
            {"detail": "some fields need another look", "errors": errors},
            status_code=422,
            headers=cors,
        )
    # Committed when this returns (with other requests' events: intake.py), so the answer is
    # true. Each submission is its own event: a new id, never a duplicate.
    await store_verified(
        request,
        engine,
        Intake(capture.INBOX_PROVIDER, slug),
        external_id=uuid.uuid4().hex,
        event_type=capture.INQUIRY_EVENT,
        workspace_id=workspace_id,
        integration_id=None,
        payload=inquiry.payload(),
    )
    return _thanks(html, name, 202, cors)


def _thanks(html: bool, name: str, status: int, headers: dict[str, str]) -> Response:
    if html:
        return _page(
            "lead_message.html", status, headers, title=f"Thank you from {name}", text=THANKS
        )
    return JSONResponse({"detail": THANKS}, status_code=status, headers=headers)
