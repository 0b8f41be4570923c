"""OAuth callbacks on the sidecar (Stripe Connect, Google): the provider sends the owner's
browser here with a code and our signed state; we store the connection and send the browser back
to the console."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse
from sqlalchemy import Engine

from backend.connections import oauth
from backend.db import get_engine
from backend.platform.errors import ServiceError

router = APIRouter(prefix="/oauth", tags=["oauth"])
log = structlog.get_logger("oauth")

EngineDep = Annotated[Engine, Depends(get_engine)]


@router.get("/stripe/callback", status_code=303, response_class=RedirectResponse)
def stripe_callback(
    engine: EngineDep,
    code: str = "",
    state: str = "",
    error: str = "",
    error_description: str = "",
) -> RedirectResponse:
    """Stripe Connect's redirect: ``code`` and ``state``, or ``error=access_denied``."""
    if error:
        message = (
            "You cancelled connecting Stripe."
            if error == "access_denied"
            else f"Stripe said: {error_description or error}"
        )
        return RedirectResponse(oauth.console_url("stripe", error=message), status_code=303)
    try:
        result = oauth.stripe_callback(engine, code=code, state=state)
    except ServiceError as exc:
        # The code and state are never logged: the code is a credential until it is used.
        log.warning("oauth callback refused", provider="stripe", reason=str(exc))
        return RedirectResponse(oauth.console_url("stripe", error=str(exc)), status_code=303)
    if not result.ok:
        return RedirectResponse(oauth.console_url("stripe", error=result.message), status_code=303)
    return RedirectResponse(oauth.console_url("stripe", connected="1"), status_code=303)


@router.get("/google/callback", status_code=303, response_class=RedirectResponse)
def google_callback(
    engine: EngineDep,
    code: str = "",
    state: str = "",
    error: str = "",
    scope: str = "",
) -> RedirectResponse:
    """Google's redirect: ``code``, ``scope`` and ``state``, or ``error=access_denied``."""
    slug = oauth.GOOGLE
    if error:
        message = (
            "You cancelled connecting Google Drive."
            if error == "access_denied"
            else f"Google said: {error}"
        )
        return RedirectResponse(oauth.console_url(slug, error=message), status_code=303)
    try:
        result = oauth.google_callback(engine, code=code, state=state)
    except ServiceError as exc:
        # The code and state are never logged: the code is a credential until it is used.
        log.warning("oauth callback refused", provider="google", reason=str(exc))
        return RedirectResponse(oauth.console_url(slug, error=str(exc)), status_code=303)
    if not result.ok:
        return RedirectResponse(oauth.console_url(slug, error=result.message), status_code=303)
    return RedirectResponse(oauth.console_url(slug, connected="1"), status_code=303)
