"""Who receives a provider's webhook: a workspace's connected integration (found by the
workspace's slug, or by its own id for Standard Webhooks) and the secret that verifies it.

The sidecar's routes call these and answer from the outcome; they query nothing themselves.
Each lookup runs in a short transaction of its own and returns plain values (no ORM row
outlives it), so the sidecar may keep a receiver in its cache (backend/api/webhooks/
receivers.py) and verify later requests without the database. A lookup costs what it did
inside the routes: two indexed reads by slug (workspace, then its integrations), or one by id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.connections import credentials
from backend.db import session_scope
from backend.security.crypto import CryptoError
from models import Integration, IntegrationStatus, Workspace

log = structlog.get_logger("sidecar")

# Longer slugs and ids cannot exist (column widths, INTEGER), and PostgreSQL would raise on
# them (or on a NUL) rather than match nothing: such values are unknown without a query.
_MAX_SLUG = 64
_MAX_INT4 = 2**31 - 1

Why = Literal["unknown_workspace", "not_connected", "unknown_integration", "not_configured"]


@dataclass(frozen=True, slots=True)
class Receiver:
    """The integration a webhook is for, as plain values.

    ``secret`` is the sealed secret that was asked for (None when none was); ``settings`` the
    integration's non-secret settings (SendGrid keeps its public verification key there).
    """

    workspace_id: int
    integration_id: int
    provider: str
    secret: Any = None
    settings: Mapping[str, Any] = field(default_factory=dict)


class NoReceiver(LookupError):
    """Nobody receives this webhook; ``why`` says which check failed.

    For ``not_configured`` the integration was found: ``provider`` and ``workspace_id`` are
    its own and ``key`` the secret it lacks.
    """

    def __init__(
        self,
        why: Why,
        *,
        provider: str | None = None,
        workspace_id: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(why)
        self.why: Why = why
        self.provider = provider
        self.workspace_id = workspace_id
        self.key = key


def receives(integration: Integration) -> bool:
    """Whether the integration takes its provider's webhooks: anything but disconnected. One
    in "error" (a failed health check) still receives them, or its events would be lost."""
    return integration.status is not IntegrationStatus.INACTIVE


def for_workspace(
    engine: Engine, *, slug: str, providers: Iterable[str], secret: str | None = None
) -> Receiver:
    """The receiving integration of the workspace ``slug`` among ``providers`` (the first
    that receives, in the order given), with its sealed secret ``secret`` when asked for.

    Raises NoReceiver: unknown_workspace, not_connected, or not_configured (the secret is
    missing or empty, or cannot be opened by our key ring).
    """
    with session_scope(engine) as session:
        integration = _workspace_integration(session, slug=slug, providers=providers)
        return _receiver(integration, secret, workspace=slug)


def by_id(engine: Engine, integration_id: int, *, secret: str) -> Receiver:
    """The integration ``integration_id`` if it receives, with its sealed secret ``secret``.

    Raises NoReceiver: unknown_integration (no such id, or disconnected) or not_configured.
    """
    with session_scope(engine) as session:
        row = None
        if 0 < integration_id <= _MAX_INT4:
            row = session.get(Integration, integration_id)
        if row is None or not receives(row):
            raise NoReceiver("unknown_integration")
        return _receiver(row, secret, workspace=str(row.workspace_id))


def _workspace_integration(session: Session, *, slug: str, providers: Iterable[str]) -> Integration:
    workspace_id = None
    if len(slug) <= _MAX_SLUG and "\x00" not in slug:
        workspace_id = session.scalar(select(Workspace.id).where(Workspace.slug == slug))
    if workspace_id is None:
        raise NoReceiver("unknown_workspace")
    wanted = list(providers)
    rows = {
        row.provider: row
        for row in session.scalars(
            select(Integration).where(
                Integration.workspace_id == workspace_id, Integration.provider.in_(wanted)
            )
        )
    }
    for provider in wanted:
        row = rows.get(provider)
        if row is not None and receives(row):
            return row
    raise NoReceiver("not_connected")


def _receiver(integration: Integration, key: str | None, *, workspace: str) -> Receiver:
    value = None if key is None else _secret(integration, key, workspace=workspace)
    return Receiver(
        workspace_id=integration.workspace_id,
        integration_id=integration.id,
        provider=integration.provider,
        secret=value,
        settings=dict(integration.settings or {}),
    )


def _secret(integration: Integration, key: str, *, workspace: str) -> Any:
    try:
        value = credentials.unseal(integration).get(key)
    except CryptoError:
        # Our key ring cannot open it (a retired key): nothing the sender can fix. Logged for
        # the operator; the provider is told "not configured" and retries later.
        log.error(
            "integration secrets unreadable",
            provider=integration.provider,
            workspace=workspace,
            integration_id=integration.id,
        )
        value = None
    if not value:
        raise NoReceiver(
            "not_configured",
            provider=integration.provider,
            workspace_id=integration.workspace_id,
            key=key,
        )
    return value
