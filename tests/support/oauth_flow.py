"""An owner's OAuth flow as the console and the sidecar's start hop make it, for tests whose
subject is what comes after: ``authorize`` gives the provider's consent URL (the flow begun for
a real console session and bound to a test browser), ``complete`` finishes it as the callback
would, with that browser's cookie."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.connections import oauth, oauth_nonces, views
from backend.platform.actors import Actor
from backend.security import tokens
from backend.security.auth import new_session_token, token_digest
from models import OperatorSession, utcnow
from tests.support.steps import in_steps

# nonce -> the test browser's binding cookie value.
_BINDINGS: dict[str, str] = {}


def console_session(session: Session, actor: Actor) -> str:
    """A live console session for ``actor``: its token."""
    token = new_session_token()
    session.add(
        OperatorSession(
            token_hash=token_digest(token),
            operator_id=actor.operator_id,
            workspace_id=actor.workspace_id,
            expires_at=utcnow() + dt.timedelta(hours=1),
        )
    )
    session.flush()
    return token


def nonce_of(start_url: str) -> str:
    return parse_qs(urlsplit(start_url).query)["nonce"][0]


def authorize(session: Session, actor: Actor, provider: str) -> str:
    token = console_session(session, actor)
    start = oauth.begin(session, actor=actor, provider_slug=provider, session_token=token)
    nonce = nonce_of(start)
    url, binding = oauth.open_flow(session, provider=provider, nonce=nonce)
    _BINDINGS[nonce] = binding
    session.commit()
    return url


def cookies_for(state: str) -> dict[str, str]:
    secret = get_settings().secret_key.get_secret_value()
    data = tokens.verify(secret, state, salt=tokens.OAUTH_STATE_SALT, max_age=3600)
    nonce = str(data.get("n", ""))
    return {oauth_nonces.cookie_name(nonce): _BINDINGS.get(nonce, "")}


def complete(session: Session, provider: str, *, code: str, state: str) -> views.ConnectResult:
    """The sidecar callback's work, with this browser's cookie: the flow consumed (committed),
    then the code exchanged and the connection stored, each step in transactions of its own."""
    callback = oauth.stripe_callback if provider == oauth.STRIPE else oauth.google_callback
    return in_steps(
        session,
        lambda engine: callback(engine, code=code, state=state, cookies=_cookies_or_none(state)),
    )


def _cookies_or_none(state: str) -> dict[str, str]:
    try:
        return cookies_for(state)
    except tokens.TokenError:
        return {}  # a tampered state: verify_callback says why
