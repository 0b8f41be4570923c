"""Credentials at rest: AES-256-GCM under an ordered key ring.

Each ciphertext is ``nonce (12 bytes) || ciphertext+tag`` under a fresh random 96-bit nonce, with
the row it belongs to bound as associated data, so a ciphertext copied into another row (another
workspace, provider or integration) does not decrypt. The id of the key that encrypted it is
stored beside it. The ring's first key encrypts; every key decrypts, so keys can rotate.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class CryptoError(Exception):
    """The ciphertext cannot be read: wrong key, wrong row, or tampered with."""


class KeyRingError(ValueError):
    """The key ring setting is malformed; the message says how."""


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, setting: str) -> KeyRing:
        """``"k2:BASE64,k1:BASE64"``: newest first, each a 32-byte AES-256 key."""
        keys: list[tuple[str, bytes]] = []
        for entry in (part.strip() for part in setting.split(",")):
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            if not sep or not key_id:
                raise KeyRingError("each key ring entry is 'id:base64key' (e.g. 'k2:...')")
            try:
                raw = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise KeyRingError(f"key {key_id!r} is not valid base64") from exc
            if len(raw) != 32:
                raise KeyRingError(f"key {key_id!r} has {len(raw)} bytes; AES-256 needs 32")
            if any(existing == key_id for existing, _ in keys):
                raise KeyRingError(f"key id {key_id!r} appears twice in the ring")
            keys.append((key_id, raw))
        if not keys:
            raise KeyRingError("the key ring is empty")
        return cls(tuple(keys))

    @property
    def current_id(self) -> str:
        return self.keys[0][0]

    @property
    def ids(self) -> set[str]:
        return {key_id for key_id, _ in self.keys}

    def _key(self, key_id: str) -> bytes:
        for candidate, raw in self.keys:
            if candidate == key_id:
                return raw
        raise CryptoError(f"key {key_id!r} is not in the key ring (HUB_CREDENTIAL_KEYS)")

    def encrypt(self, plaintext: bytes, *, associated_data: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._key(self.current_id)).encrypt(nonce, plaintext, associated_data)
        return self.current_id, nonce + sealed

    def decrypt(self, blob: bytes, *, key_id: str, associated_data: bytes) -> bytes:
        if len(blob) < NONCE_BYTES + 16:
            raise CryptoError("ciphertext is truncated")
        try:
            return AESGCM(self._key(key_id)).decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data
            )
        except InvalidTag:
            raise CryptoError(
                "ciphertext does not decrypt: it was altered or belongs to another row"
            ) from None


def generate_key_entry(key_id: str) -> str:
    """A new ring entry, for `python -m backend.cli keys new`."""
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"
