"""One-time OAuth flows, bound to the browser that started them.

A signed ``state`` alone proves only that we made it: whoever obtained an owner's state (a
referrer, a log, a shared screen) could finish the flow with a code of their own and connect
their account to the owner's workspace. So each flow also has a row in ``oauth_nonces``:

1. the console's button (``begin``) stores the flow (workspace, operator, provider, the
   console session that started it, ten minutes) and sends the browser to the sidecar's start
   hop with the nonce;
2. the start hop (``bind``) sets a random binding cookie on the sidecar's origin (HttpOnly,
   SameSite=Lax so the provider's redirect back still carries it) and stores its digest; it
   binds once, so a copied start link binds nothing;
3. the callback (``consume``) accepts the state only with that browser's cookie, while the
   session that started it is still live, once: ``used_at`` is committed before the code is
   exchanged.

The console and the sidecar are on different origins (ports, or hosts in production), so the
console's own session cookie never reaches the callback: the binding cookie is the sidecar's.
Only digests are stored.

Tested in tests/connections/test_oauth.py and tests/api/test_oauth.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput
from backend.security import tokens
from backend.security.auth import token_digest
from models import OAuthNonce, OperatorSession, utcnow

TTL = dt.timedelta(seconds=tokens.OAUTH_STATE_MAX_AGE)
COOKIE_PREFIX = "hub_oauth_"
START_AGAIN = "Start Connect again from the console."


class FlowRefused(InvalidInput):
    """This browser cannot finish (or start) this flow; the sidecar answers 400 with a page
    saying what happened and what to do."""


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def cookie_name(nonce: str) -> str:
    """One cookie per flow, so two flows in two tabs do not undo each other."""
    return COOKIE_PREFIX + digest(nonce)[:16]


def begin(
    session: Session,
    *,
    actor: Actor,
    provider: str,
    session_token: str,
    now: dt.datetime | None = None,
) -> str:
    """Store a new flow for ``actor``'s console session; the nonce (it goes to the start hop)."""
    now = now or utcnow()
    nonce = secrets.token_urlsafe(32)
    session.add(
        OAuthNonce(
            workspace_id=actor.workspace_id,
            operator_id=actor.operator_id,
            provider=provider,
            nonce_digest=digest(nonce),
            session_digest=token_digest(session_token),
            expires_at=now + TTL,
        )
    )
    session.flush()
    return nonce


def _find(session: Session, nonce: str, provider: str, now: dt.datetime) -> OAuthNonce:
    row = session.scalar(
        select(OAuthNonce).where(OAuthNonce.nonce_digest == digest(nonce)).with_for_update()
    )
    if row is None or row.provider != provider:
        raise FlowRefused(f"This Connect link is not one the console started. {START_AGAIN}")
    if row.used_at is not None:
        raise FlowRefused(
            "This Connect link was already used: each one works once, in the browser that "
            f"started it. {START_AGAIN}"
        )
    if row.expires_at <= now:
        raise FlowRefused(f"This Connect link has expired (it lasts ten minutes). {START_AGAIN}")
    return row


def bind(
    session: Session, *, nonce: str, provider: str, now: dt.datetime | None = None
) -> tuple[OAuthNonce, str]:
    """The start hop: bind the flow to this browser; the flow and the binding to set as the
    browser's cookie."""
    now = now or utcnow()
    row = _find(session, nonce, provider, now)
    if row.browser_digest is not None:
        raise FlowRefused(f"This Connect link was already opened in a browser. {START_AGAIN}")
    binding = secrets.token_urlsafe(32)
    row.browser_digest = digest(binding)
    return row, binding


def consume(
    session: Session,
    *,
    state: tokens.OAuthState,
    cookies: Mapping[str, str],
    now: dt.datetime | None = None,
) -> OAuthNonce:
    """The callback: this flow, from the browser that started it, still signed in, once."""
    now = now or utcnow()
    row = _find(session, state.nonce, state.provider, now)
    if (row.workspace_id, row.operator_id) != (state.workspace_id, state.operator_id):
        raise FlowRefused(f"This Connect link is not one the console started. {START_AGAIN}")
    binding = cookies.get(cookie_name(state.nonce), "")
    if (
        not binding
        or row.browser_digest is None
        or not hmac.compare_digest(digest(binding), row.browser_digest)
    ):
        raise FlowRefused(
            "This Connect was started in another browser (or this browser's cookies were "
            f"cleared): it can only be finished where it began. {START_AGAIN}"
        )
    live = session.scalar(
        select(OperatorSession.id).where(
            OperatorSession.token_hash == row.session_digest,
            OperatorSession.operator_id == row.operator_id,
            OperatorSession.revoked_at.is_(None),
            OperatorSession.expires_at > now,
        )
    )
    if live is None:
        raise FlowRefused(
            f"You have logged out of the console since this Connect began. Log in, then "
            f"{START_AGAIN[0].lower()}{START_AGAIN[1:]}"
        )
    row.used_at = now
    return row
