"""An integration's secrets, sealed into ``integrations.credentials_enc`` and opened again.

The associated data binds each ciphertext to its row: workspace, provider and integration id.
Keys rotate: ``rotate`` re-encrypts every row under the newest key, ``check_ring`` names key ids
still in use that the ring has lost.

Tested in tests/security/test_crypto.py, tests/test_cli_keys.py (rotation) and
tests/connections/test_service.py.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.security.crypto import CryptoError, KeyRing
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


# -- key rotation -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RotationReport:
    reencrypted: int
    current: int
    unreadable: list[str]

    def __str__(self) -> str:
        return (
            f"re-encrypted {self.reencrypted}, already current {self.current}, "
            f"unreadable {len(self.unreadable)}"
        )


def check_ring(session: Session, ring: KeyRing | None = None) -> list[str]:
    """Key ids that stored credentials use and the ring lacks (sorted): if any, those rows can
    no longer be read, so processes refuse to start rather than fail on first use."""
    ring = ring or key_ring()
    used = session.scalars(
        select(Integration.key_id).where(Integration.key_id.is_not(None)).distinct()
    ).all()
    return sorted({key_id for key_id in used if key_id is not None} - ring.ids)


def missing_keys_message(missing: list[str]) -> str:
    ids = ", ".join(repr(key_id) for key_id in missing)
    which = "key id" if len(missing) == 1 else "key ids"
    return (
        f"Stored credentials use {which} {ids}, which {'is' if len(missing) == 1 else 'are'} "
        "not in HUB_CREDENTIAL_KEYS: add it back (newest first) or run keys rotate before "
        "removing it."
    )


def rotate(session: Session, ring: KeyRing | None = None) -> RotationReport:
    """Re-encrypt every stored credential under the ring's newest key (``ring.current_id``).

    Rows are locked one by one in the caller's transaction; a row that cannot be read (its key
    is gone, or it was tampered with) is left as it is and named in the report.
    """
    ring = ring or key_ring()
    reencrypted = current = 0
    unreadable: list[str] = []
    rows = session.scalars(
        select(Integration)
        .where(Integration.credentials_enc.is_not(None))
        .order_by(Integration.id)
        .with_for_update()
    )
    for row in rows:
        if row.key_id == ring.current_id:
            current += 1
            continue
        try:
            secrets = unseal(row, ring)
        except CryptoError:
            unreadable.append(f"integration {row.id} ({row.provider}, key {row.key_id!r})")
            continue
        seal(row, secrets, ring)
        reencrypted += 1
    return RotationReport(reencrypted, current, unreadable)


def startup_problem(engine: Engine) -> str | None:
    """Why a process must not start (stored credentials it cannot read), or None.

    An unmigrated or unreachable database is not this check's business (readiness reports it),
    so it passes here: the sidecar must still start and answer /readyz with the reason.
    """
    try:
        with Session(engine) as session:
            missing = check_ring(session)
    except SQLAlchemyError:
        return None
    return missing_keys_message(missing) if missing else None
