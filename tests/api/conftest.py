"""Fixtures of the sidecar tests: an app on the test database and a seeded workspace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tests.api.webhook_support import Seeded, client_for, seed


@pytest.fixture
def seeded(session: Session) -> Seeded:
    return seed(session)


@pytest.fixture
def sidecar(engine: Engine, seeded: Seeded) -> Iterator[TestClient]:
    yield from client_for(engine)
