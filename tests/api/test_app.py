"""The sidecar's health, readiness and OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from backend.api.app import create_app
from backend.db import get_engine, make_engine
from tests.support.migrate import downgrade


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    app = create_app()
    app.dependency_overrides[get_engine] = lambda: engine
    with TestClient(app) as client:
        yield client


def test_healthz_answers(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_is_200_on_a_migrated_database(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"


def test_readyz_is_503_with_the_reason_when_not_migrated(
    client: TestClient, engine: Engine
) -> None:
    downgrade(engine, "base")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "make migrate" in response.json()["reason"]


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: object) -> None:
    app = create_app()
    unreachable = make_engine("postgresql+psycopg://nobody:secretpw@127.0.0.1:1/none")
    app.dependency_overrides[get_engine] = lambda: unreachable
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "unreachable" in response.json()["reason"]
    assert "secretpw" not in response.text


def test_openapi_document_lists_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/readyz"} <= set(paths)
