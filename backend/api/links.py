"""Signed links on the sidecar: ``GET /x/{token}`` shows the page a link was made for
(backend/email/links.py: consent applied, the visit recorded); ``POST /x/{token}/fresh`` asks
for a fresh link by e-mail.

A link that does not work gets a page, never a trace: 410 for an expired one, 400 for one that
was changed or made up (both offer a fresh link to the address it was sent to), 404 when what
it showed is gone (or never was in its workspace). The fresh-link answer is the same whatever
the address and whatever the token (no telling which addresses we know), and each client
address may ask ``RATE_LIMIT`` times per ``RATE_WINDOW`` seconds (429 with Retry-After, like
the lead form).

Tested in tests/api/test_links.py.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from backend.api.forms import RateLimit
from backend.api.limits import read_capped
from backend.api.pages import form_fields, page
from backend.db import get_engine, session_scope
from backend.email import links
from backend.security.tokens import TokenError

router = APIRouter(tags=["email"])
log = structlog.get_logger("links")

EngineDep = Annotated[Engine, Depends(get_engine)]
MAX_BODY_BYTES = 4096
RATE_LIMIT = 5
RATE_WINDOW = 600.0
ANSWER = (
    "If that is the address this link was sent to, a fresh link is on its way: check your "
    "inbox in a few minutes."
)
_HTML: dict[str, object] = {"content": {"text/html": {}}}
REFUSED: dict[int | str, dict[str, object]] = {
    400: {"description": "The link was changed or made up: a page offering a fresh one.", **_HTML},
    404: {"description": "What the link showed is gone: a page offering a fresh one.", **_HTML},
    410: {"description": "The link expired: a page offering a fresh one.", **_HTML},
}


def _refused(token: str, error: TokenError) -> HTMLResponse:
    if isinstance(error, links.LinkExpired):
        status, title = 410, "This link has expired"
    elif isinstance(error, links.LinkGone):
        status, title = 404, "This link no longer works"
    else:
        status, title = 400, "This link does not work"
    log.info("link refused", reason=type(error).__name__)
    return page(
        "link_refused.html",
        status,
        title=title,
        text=str(error),
        # What is gone stays gone: a fresh link to it would not work either.
        offer_fresh=not isinstance(error, links.LinkGone),
        action=f"/x/{quote(token, safe='')}/fresh",
    )


def _visit(engine: Engine, token: str) -> links.Page:
    with session_scope(engine) as session:
        return links.visit(session, token)


@router.get("/x/{token}", response_class=HTMLResponse, responses=REFUSED)
async def show(token: str, engine: EngineDep) -> HTMLResponse:
    """The page a signed link shows; the visit is recorded."""
    try:
        shown = await run_in_threadpool(_visit, engine, token)
    except TokenError as error:
        return _refused(token, error)
    return page("link_page.html", page=shown)


def _limiter(request: Request) -> RateLimit:
    state = request.app.state
    if getattr(state, "fresh_link_rate_limit", None) is None:
        state.fresh_link_rate_limit = RateLimit(limit=RATE_LIMIT, window=RATE_WINDOW)
    limiter: RateLimit = state.fresh_link_rate_limit
    return limiter


def _request_fresh(engine: Engine, token: str, email: str) -> bool:
    with session_scope(engine) as session:
        return links.request_fresh(session, token, email)


@router.post(
    "/x/{token}/fresh",
    response_class=HTMLResponse,
    responses={
        413: {"description": "The body is over 4 KiB."},
        429: {"description": "Too many asks from this client: see Retry-After.", **_HTML},
    },
)
async def fresh(token: str, request: Request, engine: EngineDep) -> HTMLResponse:
    """Mail a fresh link to the address the link was sent to, if the form names it (form
    field ``email``). The same answer whatever happened."""
    body = await read_capped(request, MAX_BODY_BYTES)
    client = request.client.host if request.client else "unknown"
    wait = _limiter(request).retry_after(client, "fresh-link")
    if wait is not None:
        log.info("fresh link rate limited", retry_after=wait)
        return page(
            "link_message.html",
            429,
            {"Retry-After": str(wait)},
            title="Please wait a moment",
            text=f"Too many requests from this address; try again in {wait} seconds.",
        )
    email = form_fields(body).get("email", "")[:254]
    queued = await run_in_threadpool(_request_fresh, engine, token, email)
    log.info("fresh link asked", queued=queued)
    return page("link_message.html", title="Thank you", text=ANSWER)
