"""Signed, expiring tokens for values that leave our hands and come back: OAuth ``state`` and
links sent to people. Signed with ``HUB_SECRET_KEY`` and a salt per purpose, so a token made for
one purpose is never accepted for another.

Tested in tests/connections/test_oauth.py and tests/api/test_oauth.py (signed OAuth state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

OAUTH_STATE_SALT = "hub.oauth-state.v1"
OAUTH_STATE_MAX_AGE = 600


class TokenError(ValueError):
    """The token cannot be used; ``str()`` says why in words for the operator."""


class TokenExpired(TokenError):
    pass


class TokenInvalid(TokenError):
    pass


def _serializer(secret: str, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=salt)


def sign(secret: str, *, salt: str, data: dict[str, Any]) -> str:
    return _serializer(secret, salt).dumps(data)


def verify(secret: str, token: str, *, salt: str, max_age: int) -> dict[str, Any]:
    """The signed data, or TokenExpired / TokenInvalid."""
    try:
        loaded = _serializer(secret, salt).loads(token, max_age=max_age)
    except SignatureExpired:
        raise TokenExpired("This link has expired. Start again from the console.") from None
    except BadSignature:
        raise TokenInvalid(
            "This link is not valid (it was changed or made elsewhere). Start again from the "
            "console."
        ) from None
    if not isinstance(loaded, dict):
        raise TokenInvalid("This link is not valid. Start again from the console.")
    return loaded


@dataclass(frozen=True, slots=True)
class OAuthState:
    """Who started an OAuth flow, where, and for which provider."""

    workspace_id: int
    operator_id: int
    provider: str
    # The flow's one-time nonce (backend/connections/oauth_nonces.py): the signature says we
    # made the state, the nonce that it is used once, by the browser that started it.
    nonce: str = ""


def oauth_state(
    secret: str, *, workspace_id: int, operator_id: int, provider: str, nonce: str = ""
) -> str:
    return sign(
        secret,
        salt=OAUTH_STATE_SALT,
        data={"w": workspace_id, "o": operator_id, "p": provider, "n": nonce},
    )


def read_oauth_state(
    secret: str, token: str, *, provider: str, max_age: int = OAUTH_STATE_MAX_AGE
) -> OAuthState:
    """Verify an OAuth ``state`` that came back on a callback for ``provider``."""
    data = verify(secret, token, salt=OAUTH_STATE_SALT, max_age=max_age)
    try:
        state = OAuthState(int(data["w"]), int(data["o"]), str(data["p"]), str(data.get("n", "")))
    except (KeyError, TypeError, ValueError):
        raise TokenInvalid("This link is not valid. Start again from the console.") from None
    if state.provider != provider:
        # A state minted for Google replayed on Stripe's callback (or the reverse).
        raise TokenInvalid(
            f"This sign-in was started for {state.provider}, not {provider}. Start again."
        )
    return state
