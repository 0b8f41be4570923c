"""Point this process's settings (and the processes tests start) at a test database and
sandbox: the code under test reads them through backend.config like in production."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend import config, db
from backend.connections import credentials
from models import Integration, IntegrationStatus, Workspace


def _clear_caches() -> None:
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    credentials.key_ring.cache_clear()


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A dict of HUB_* variables; call ``apply(env)`` after filling it."""
    env: dict[str, str] = {}
    yield env
    for key in env:
        monkeypatch.delenv(key, raising=False)
    _clear_caches()


def apply(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *, db_url: str, sandbox_url: str
) -> None:
    env.update(
        {
            "HUB_DATABASE_URL": db_url,
            "HUB_SANDBOX_PORT": str(urlsplit(sandbox_url).port),
            "HUB_PROVIDER_MODE": "sandbox",
        }
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _clear_caches()


def connect_stripe(engine: Engine, *, secret_key: str, slug: str = "shop") -> int:
    """A workspace with an active Stripe connection holding ``secret_key``."""
    with Session(engine) as session:
        workspace = session.scalars(select(Workspace).where(Workspace.slug == slug)).first()
        if workspace is None:
            workspace = Workspace(name=slug.title(), slug=slug, plan="pro")  # type: ignore[arg-type]
            session.add(workspace)
            session.flush()
        integration = Integration(
            workspace_id=workspace.id,
            provider="stripe",
            display_name="Stripe",
            status=IntegrationStatus.ACTIVE,
        )
        session.add(integration)
        session.flush()
        credentials.seal(integration, {"secret_key": secret_key})
        session.commit()
        return workspace.id
