"""OAuth on the sidecar (Stripe Connect, Google): the start hop, which binds a flow to the
owner's browser with a cookie on this origin before sending it on to the provider; and the
callbacks, where the provider sends that browser back with a code and our signed state. We
store the connection and send the browser back to the console. A flow used twice, or brought
back by another browser, gets a 400 page that says so (backend/connections/oauth_nonces.py)."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine

from backend.config import ProviderMode, get_settings
from backend.connections import oauth, oauth_nonces, views
from backend.db import get_engine
from backend.platform.errors import ServiceError

router = APIRouter(prefix="/oauth", tags=["oauth"])
log = structlog.get_logger("oauth")

EngineDep = Annotated[Engine, Depends(get_engine)]
_NAMES = {oauth.STRIPE: "Stripe", oauth.GOOGLE: "Google Drive"}


def refused_page(provider: str, message: str) -> HTMLResponse:
    """400: what happened and what to do, with the way back to the console."""
    name = _NAMES.get(provider, provider)
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Connecting {name} did not finish</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto;">
<h1>Connecting {name} did not finish</h1>
<p data-testid="oauth-refused">{html.escape(message)}</p>
<p>Nothing was connected. <a href="{html.escape(oauth.console_url(provider))}">Back to the
console</a>, and press Connect there again.</p>
</body></html>"""
    return HTMLResponse(body, status_code=400)


def _start(engine: Engine, provider: str, nonce: str) -> Response:
    try:
        url, binding = oauth.start_hop(engine, provider=provider, nonce=nonce)
    except oauth_nonces.FlowRefused as exc:
        return refused_page(provider, str(exc))
    answer = RedirectResponse(url, status_code=303)
    answer.set_cookie(
        oauth_nonces.cookie_name(nonce),
        binding,
        max_age=int(oauth_nonces.TTL.total_seconds()),
        path="/oauth/",
        httponly=True,
        # Lax, not Strict: the provider's redirect back here is a cross-site navigation.
        samesite="lax",
        secure=get_settings().provider_mode is not ProviderMode.SANDBOX,
    )
    return answer


Complete = Callable[..., views.ConnectResult]


def _finish(
    engine: Engine,
    provider: str,
    callback: Complete,
    *,
    code: str,
    state: str,
    cookies: Mapping[str, str],
) -> Response:
    try:
        result = callback(engine, code=code, state=state, cookies=cookies)
    except oauth_nonces.FlowRefused as exc:
        log.warning("oauth callback refused", provider=provider, reason=str(exc))
        return refused_page(provider, str(exc))
    except ServiceError as exc:
        # The code and state are never logged: the code is a credential until it is used.
        log.warning("oauth callback refused", provider=provider, reason=str(exc))
        return RedirectResponse(oauth.console_url(provider, error=str(exc)), status_code=303)
    if not result.ok:
        return RedirectResponse(oauth.console_url(provider, error=result.message), status_code=303)
    return RedirectResponse(oauth.console_url(provider, connected="1"), status_code=303)


def _bindings(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.cookies.items() if k.startswith(oauth_nonces.COOKIE_PREFIX)}


@router.get("/stripe/start", status_code=303, response_class=RedirectResponse)
def stripe_start(engine: EngineDep, nonce: str = "") -> Response:
    """The console's "Connect with Stripe" lands here first: bind, then on to Stripe."""
    return _start(engine, oauth.STRIPE, nonce)


@router.get("/google/start", status_code=303, response_class=RedirectResponse)
def google_start(engine: EngineDep, nonce: str = "") -> Response:
    """The console's "Connect with Google" lands here first: bind, then on to Google."""
    return _start(engine, oauth.GOOGLE, nonce)


@router.get("/stripe/callback", status_code=303, response_class=RedirectResponse)
def stripe_callback(
    request: Request,
    engine: EngineDep,
    code: str = "",
    state: str = "",
    error: str = "",
    error_description: str = "",
) -> Response:
    """Stripe Connect's redirect: ``code`` and ``state``, or ``error=access_denied``."""
    if error:
        message = (
            "You cancelled connecting Stripe."
            if error == "access_denied"
            else f"Stripe said: {error_description or error}"
        )
        return RedirectResponse(oauth.console_url("stripe", error=message), status_code=303)
    return _finish(
        engine,
        oauth.STRIPE,
        oauth.stripe_callback,
        code=code,
        state=state,
        cookies=_bindings(request),
    )


@router.get("/google/callback", status_code=303, response_class=RedirectResponse)
def google_callback(
    request: Request,
    engine: EngineDep,
    code: str = "",
    state: str = "",
    error: str = "",
    scope: str = "",
) -> Response:
    """Google's redirect: ``code``, ``scope`` and ``state``, or ``error=access_denied``."""
    slug = oauth.GOOGLE
    if error:
        message = (
            "You cancelled connecting Google Drive."
            if error == "access_denied"
            else f"Google said: {error}"
        )
        return RedirectResponse(oauth.console_url(slug, error=message), status_code=303)
    return _finish(
        engine, slug, oauth.google_callback, code=code, state=state, cookies=_bindings(request)
    )
