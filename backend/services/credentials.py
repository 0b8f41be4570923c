"""An integration's secrets, sealed into ``integrations.credentials_enc`` and opened again.

The associated data binds each ciphertext to its row: workspace, provider and integration id.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from backend.config import get_settings
from backend.security.crypto import KeyRing
from models import Integration


@functools.cache
def key_ring() -> KeyRing:
    return KeyRing.parse(get_settings().credential_keys.get_secret_value())


def _associated_data(integration: Integration) -> bytes:
    if integration.id is None:
        raise ValueError("flush the integration before sealing its credentials (it needs an id)")
    return f"{integration.workspace_id}:{integration.provider}:{integration.id}".encode()


def seal(integration: Integration, secrets: dict[str, Any], ring: KeyRing | None = None) -> None:
    ring = ring or key_ring()
    key_id, blob = ring.encrypt(
        json.dumps(secrets).encode(), associated_data=_associated_data(integration)
    )
    integration.credentials_enc = blob
    integration.key_id = key_id


def unseal(integration: Integration, ring: KeyRing | None = None) -> dict[str, Any]:
    """The integration's secrets; {} when none are stored. Raises CryptoError if unreadable."""
    if integration.credentials_enc is None or integration.key_id is None:
        return {}
    ring = ring or key_ring()
    plain = ring.decrypt(
        integration.credentials_enc,
        key_id=integration.key_id,
        associated_data=_associated_data(integration),
    )
    loaded: dict[str, Any] = json.loads(plain)
    return loaded
