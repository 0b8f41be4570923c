"""Password hashing and session tokens: the cryptographic half of logging in.

What a login means for the business (throttling, workspaces, roles) is in services/accounts.py.

Tested in tests/accounts/test_service.py (login, sessions).
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a miss costs as long as a wrong password and
# response times do not tell which addresses have accounts.
_DUMMY_HASH = _hasher.hash("not-a-real-password-" + secrets.token_hex(8))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the sessions table stores: a leaked table logs nobody in."""
    return hashlib.sha256(token.encode()).hexdigest()
