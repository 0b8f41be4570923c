"""One-click unsubscribe on the sidecar: ``/u/{token}`` from every e-mail's link and its
``List-Unsubscribe`` header. POST (RFC 8058's one click, or the page's button) unsubscribes; GET
only shows the button, because mail scanners fetch every link in a message and a GET that
unsubscribed would unsubscribe people who never asked (RFC 8058, section 1).

Tested in tests/api/test_unsubscribe.py.
"""

from __future__ import annotations

import html
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine

from backend.db import get_engine, session_scope
from backend.email import unsubscribe
from backend.security.tokens import TokenError

router = APIRouter(tags=["email"])
log = structlog.get_logger("unsubscribe")

EngineDep = Annotated[Engine, Depends(get_engine)]
REFUSED: dict[int | str, dict[str, object]] = {
    400: {
        "description": "The link was changed, made up, or its message deleted: a page saying so.",
        "content": {"text/html": {}},
    }
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto;">
<h1>{html.escape(title)}</h1>
{body}
</body></html>""",
        status_code=status,
    )


def _refused(error: TokenError) -> HTMLResponse:
    log.info("unsubscribe refused", reason=type(error).__name__)
    return _page(
        "This unsubscribe link does not work",
        f"<p data-testid='unsubscribe-refused'>{html.escape(str(error))}</p>"
        "<p>Reply to the e-mail and ask to be removed: the sender will take you off.</p>",
        400,
    )


@router.get("/u/{token}", response_class=HTMLResponse, responses=REFUSED)
def confirm(token: str, engine: EngineDep) -> HTMLResponse:
    """The page the link opens: what would stop, and the one button that stops it."""
    try:
        with session_scope(engine) as session:
            target = unsubscribe.target(session, token)
    except TokenError as error:
        return _refused(error)
    return _page(
        "Unsubscribe",
        f"<p>Stop e-mail about {html.escape(target.what)} to this address?</p>"
        f"<form method='post' action='/u/{html.escape(token)}'>"
        "<input type='hidden' name='List-Unsubscribe' value='One-Click'>"
        "<button type='submit' data-testid='unsubscribe-button'>Unsubscribe</button></form>",
    )


@router.post("/u/{token}", response_class=HTMLResponse, responses=REFUSED)
def one_click(token: str, engine: EngineDep) -> HTMLResponse:
    """RFC 8058's one-click POST (body ``List-Unsubscribe=One-Click``) or the page's button."""
    try:
        with session_scope(engine) as session:
            target = unsubscribe.unsubscribe(session, token)
    except TokenError as error:
        return _refused(error)
    return _page(
        "You are unsubscribed",
        f"<p data-testid='unsubscribed'>You will get no more e-mail about "
        f"{html.escape(target.what)}. Receipts and messages about a contract you signed "
        "still come.</p>",
    )
