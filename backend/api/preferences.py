"""E-mail preferences on the sidecar: ``/preferences/{token}`` from every e-mail's footer
(backend/email/preferences.py). GET shows each optional group, subscribed or not, and changes
nothing (mail scanners fetch every link); POST (form fields ``group`` and ``action``:
``unsubscribe`` or ``resubscribe``) changes one group. The token in the path is what the form
posts back: a page elsewhere cannot make a POST that works without it.

Tested in tests/api/test_preferences.py.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from backend.api.limits import read_capped
from backend.api.pages import form_fields, page
from backend.db import get_engine, session_scope
from backend.email import preferences
from backend.security.tokens import TokenError

router = APIRouter(tags=["email"])
log = structlog.get_logger("preferences")

EngineDep = Annotated[Engine, Depends(get_engine)]
MAX_BODY_BYTES = 4096
REFUSED: dict[int | str, dict[str, object]] = {
    400: {
        "description": "The link was changed, expired or its message deleted, or the form "
        "asked for a change not offered: a page saying so.",
        "content": {"text/html": {}},
    }
}
DONE = {
    preferences.UNSUBSCRIBE: "You are unsubscribed from {label}.",
    preferences.RESUBSCRIBE: "You are subscribed to {label} again.",
}


def _refused(text: str) -> HTMLResponse:
    return page(
        "link_message.html",
        400,
        title="This preferences link does not work",
        text=f"{text} Reply to the e-mail and the sender will change what you get.",
    )


def _show(prefs: preferences.Preferences, token: str, notice: str = "") -> HTMLResponse:
    return page(
        "preferences.html",
        prefs=prefs,
        action=f"/preferences/{quote(token, safe='')}",
        notice=notice,
    )


def _load(engine: Engine, token: str) -> preferences.Preferences:
    with session_scope(engine) as session:
        return preferences.load(session, token)


def _change(engine: Engine, token: str, group: str, action: str) -> preferences.Preferences:
    with session_scope(engine) as session:
        return preferences.change(session, token, group=group, action=action)


@router.get("/preferences/{token}", response_class=HTMLResponse, responses=REFUSED)
async def show(token: str, engine: EngineDep) -> HTMLResponse:
    """The address's groups with a button each; changes nothing."""
    try:
        prefs = await run_in_threadpool(_load, engine, token)
    except TokenError as error:
        log.info("preferences refused", reason=type(error).__name__)
        return _refused(str(error))
    return _show(prefs, token)


@router.post(
    "/preferences/{token}",
    response_class=HTMLResponse,
    responses={**REFUSED, 413: {"description": "The body is over 4 KiB."}},
)
async def change(token: str, request: Request, engine: EngineDep) -> HTMLResponse:
    """Unsubscribe from one group or resubscribe to it (never lifting a bounce's or a spam
    report's stop)."""
    fields = form_fields(await read_capped(request, MAX_BODY_BYTES))
    group, action = fields.get("group", ""), fields.get("action", "")
    try:
        prefs = await run_in_threadpool(_change, engine, token, group, action)
    except TokenError as error:
        log.info("preferences refused", reason=type(error).__name__)
        return _refused(str(error))
    except ValueError as error:
        return _refused(f"{str(error)[:120]}.")
    label = next(g.label for g in prefs.groups if g.name == group)
    return _show(prefs, token, DONE[action].format(label=label))
