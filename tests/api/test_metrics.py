"""/metrics: who may scrape it, and how often it reads the database. (Which figures it shows
is tested in tests/api/webhooks/test_intake.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.api.app import create_app
from backend.config import ProviderMode, Settings
from backend.db import get_engine
from backend.platform import inbox, outbox
from tests.test_config import REAL

TOKEN = "metrics-token-for-this-test-0123456789"


@contextmanager
def sidecar(
    engine: Engine, *, client: tuple[str, int] = ("testclient", 50000), **values: Any
) -> Iterator[TestClient]:
    app = create_app(Settings(_env_file=None, **values))  # type: ignore[call-arg]
    app.dependency_overrides[get_engine] = lambda: engine
    with TestClient(app, raise_server_exceptions=False, client=client) as test_client:
        yield test_client


def _pending(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sidecar_outbox_jobs" and sample.labels == {
                "kind": inbox.PROCESS_KIND,
                "status": "pending",
            }:
                return sample.value
    return 0.0


def _enqueue(engine: Engine, key: str) -> None:
    with Session(engine) as session:
        outbox.enqueue(session, kind=inbox.PROCESS_KIND, payload={}, idempotency_key=key)
        session.commit()


def test_the_backlog_is_read_once_per_cache_period_however_often_scraped(engine: Engine) -> None:
    with sidecar(engine, metrics_cache_seconds=3600) as client:
        first = _pending(client.get("/metrics").text)
        _enqueue(engine, "after-the-first-scrape")
        assert _pending(client.get("/metrics").text) == first  # the cached figures
    with sidecar(engine, metrics_cache_seconds=0) as client:
        assert _pending(client.get("/metrics").text) == first + 1  # read afresh


def test_a_token_is_required_when_one_is_set(engine: Engine) -> None:
    with sidecar(engine, metrics_token=TOKEN) as client:
        missing = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer not-it"})
        right = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert "HUB_METRICS_TOKEN" in missing.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in missing.text + wrong.text


def test_live_mode_without_a_token_answers_only_this_machine(engine: Engine) -> None:
    live = {"provider_mode": ProviderMode.LIVE, **REAL}
    with sidecar(engine, client=("203.0.113.9", 40000), **live) as client:
        outside = client.get("/metrics")
    with sidecar(engine, client=("127.0.0.1", 40000), **live) as client:
        local = client.get("/metrics")
    assert outside.status_code == 401 and "this machine only" in outside.json()["detail"]
    assert local.status_code == 200


def test_live_mode_serves_no_api_description_unless_asked(engine: Engine) -> None:
    live = {"provider_mode": ProviderMode.LIVE, **REAL}
    with sidecar(engine, **live) as client:
        hidden = [client.get(path).status_code for path in ("/docs", "/redoc", "/openapi.json")]
        assert client.get("/healthz").status_code == 200
    with sidecar(engine, api_docs=True, **live) as client:
        shown = [client.get(path).status_code for path in ("/docs", "/redoc", "/openapi.json")]
    assert hidden == [404, 404, 404]
    assert shown == [200, 200, 200]
