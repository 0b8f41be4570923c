"""The sidecar's health, readiness and OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

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


class _Assets(HTMLParser):
    """Every URL a page loads: scripts, stylesheets, icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.urls.append(str(found["src"]))
        if tag == "link" and found.get("href"):
            self.urls.append(str(found["href"]))
        if tag == "redoc" and found.get("spec-url"):
            self.urls.append(str(found["spec-url"]))


def _assets_of(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    # Swagger UI's page names its scripts in the inline bootstrap code, ReDoc's in a tag.
    parser.urls += re.findall(r"""url: ?['"]([^'"]+)['"]""", html)
    return parser.urls


@pytest.mark.parametrize(
    ("page", "kinds"),
    [
        ("/docs", {"javascript", "css", "image/png", "json"}),
        ("/redoc", {"javascript", "image/png", "json"}),
    ],
)
def test_api_docs_load_only_what_the_sidecar_serves(
    client: TestClient, page: str, kinds: set[str]
) -> None:
    """A machine without internet still gets working API documentation: every script,
    stylesheet and icon the page asks for comes from the sidecar itself."""
    response = client.get(page)
    assert response.status_code == 200
    urls = _assets_of(response.text)
    assert urls, response.text
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url}"
    served = set()
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        content_type = asset.headers["content-type"]
        served |= {kind for kind in kinds if kind in content_type}
        if "javascript" in content_type or "css" in content_type:
            assert len(asset.content) > 10_000, f"{url} is not the real asset"
    assert served == kinds
