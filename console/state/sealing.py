"""Reflex's pickled states, sealed at rest.

Reflex pickles every state into ``.states/`` (or Redis) between events. Those pickles hold what
no file should: the session cookie's value (the ``token`` var, and the root state's copy of the
socket's Cookie header), and anything a handler keeps in a backend-only var. So every pickle is
sealed (AES-256-GCM under a key derived from ``HUB_SECRET_KEY``) as it is written, and opened as
it is read. A pickle that does not open (the key changed, or it was altered) is treated by
Reflex as a stale state: the page starts afresh and the cookie signs the operator in again.

Reflex has no hook for this, so ``install`` wraps ``BaseState._serialize``; the sealed bytes
are themselves a pickle whose one instruction is "call ``open_sealed``", so Reflex's own
``_deserialize`` reads them unchanged. ``seal_json``/``open_json`` seal a value a handler must
keep between two events (pasted keys waiting for "save as inactive").

Tested in tests/console/test_sealing.py.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from reflex.state import BaseState

from backend.config import get_settings

_NONCE = 12
_STATE_AD = b"hub.console-state.v1"
_VALUE_AD = b"hub.console-value.v1"


@functools.cache
def _cipher(secret: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_STATE_AD).derive(
        secret.encode()
    )
    return AESGCM(key)


def _aead() -> AESGCM:
    return _cipher(get_settings().secret_key.get_secret_value())


def seal(plain: bytes, *, associated_data: bytes = _STATE_AD) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + _aead().encrypt(nonce, plain, associated_data)


def open_(blob: bytes, *, associated_data: bytes = _STATE_AD) -> bytes:
    """Raises cryptography's InvalidTag when the blob is not ours or was altered."""
    return _aead().decrypt(blob[:_NONCE], blob[_NONCE:], associated_data)


def seal_json(value: Any) -> bytes:
    return seal(json.dumps(value).encode(), associated_data=_VALUE_AD)


def open_json(blob: bytes) -> Any:
    """The sealed value; None when there is none or it no longer opens (the key changed)."""
    if not blob:
        return None
    try:
        return json.loads(open_(blob, associated_data=_VALUE_AD))
    except InvalidTag:
        return None


def open_sealed(blob: bytes) -> object:
    """What a sealed pickle calls when Reflex unpickles it: Reflex's own pickle, opened."""
    return pickle.loads(open_(blob))  # noqa: S301 - our own pickle, authenticated by the tag


class _Sealed:
    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def __reduce__(self) -> tuple[Callable[[bytes], object], tuple[bytes]]:
        return (open_sealed, (self.blob,))


_reflex_serialize: Callable[[BaseState], bytes] = BaseState._serialize


def _sealed_serialize(state: BaseState) -> bytes:
    plain = _reflex_serialize(state)
    return pickle.dumps(_Sealed(seal(plain)))


def install() -> None:
    """Seal every state Reflex pickles from now on (idempotent)."""
    BaseState._serialize = _sealed_serialize  # type: ignore[method-assign,assignment]
