"""Fixtures for service tests that need a connected Stripe (see tests/support/shop.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from tests.support.sandbox_fixtures import MakeSandbox
from tests.support.shop import Shop, open_shop


@pytest.fixture
def shop(
    make_sandbox: MakeSandbox,
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> Shop:
    return open_shop(make_sandbox, engine, db_url, monkeypatch, hub_env)
