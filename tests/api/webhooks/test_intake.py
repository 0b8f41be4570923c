"""What every webhook route shares: the body size limit, 404s for unknown receivers, rejection
logs without secrets, the cron's outbox run, metrics, and the OpenAPI document."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from tests.api.webhook_support import (
    CRON_SECRET,
    STRIPE_SECRET,
    Seeded,
    now,
    stored,
    stripe_event,
    stripe_v1,
)

MIB = 1_048_576


def _stripe_headers(body: bytes) -> dict[str, str]:
    return {"Stripe-Signature": f"t={now()},v1={stripe_v1(body, STRIPE_SECRET, now())}"}


def _padded_event(size: int) -> bytes:
    head = b'{"id": "evt_big", "type": "invoice.paid", "pad": "'
    return head + b"a" * (size - len(head) - 2) + b'"}'


# -- body size -----------------------------------------------------------------------------------


def test_body_of_exactly_the_limit_is_accepted(
    sidecar: TestClient, engine: Engine, seeded: Seeded
) -> None:
    body = _padded_event(MIB)
    assert len(body) == MIB
    response = sidecar.post(
        f"/webhooks/stripe/{seeded.slug}", content=body, headers=_stripe_headers(body)
    )
    assert response.status_code == 200, response.text
    assert stored(engine) == (1, 1)


def test_body_over_the_limit_with_content_length_is_413(
    sidecar: TestClient, engine: Engine, seeded: Seeded
) -> None:
    body = _padded_event(MIB + 1)
    response = sidecar.post(
        f"/webhooks/stripe/{seeded.slug}", content=body, headers=_stripe_headers(body)
    )
    assert response.status_code == 413
    assert "larger than 1048576 bytes" in response.json()["detail"]
    assert stored(engine) == (0, 0)


def test_chunked_body_over_the_limit_is_413(
    sidecar: TestClient, engine: Engine, seeded: Seeded
) -> None:
    body = _padded_event(MIB + 1)
    chunks = (body[i : i + 65_536] for i in range(0, len(body), 65_536))
    response = sidecar.post(
        f"/webhooks/stripe/{seeded.slug}", content=chunks, headers=_stripe_headers(body)
    )
    assert response.status_code == 413
    assert stored(engine) == (0, 0)


async def _raw_post(app: FastAPI, path: str, chunks: list[bytes]) -> int:
    """Drive the ASGI app directly, so the request surely carries no Content-Length."""
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks
    ] + [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
        "headers": [
            (b"host", b"test"),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
        ],
    }
    await app(scope, receive, send)
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


@pytest.mark.parametrize(
    "path",
    ["/webhooks/stripe/acme", "/webhooks/stripe", "/webhooks/sendgrid/acme", "/webhooks/zoho/acme"],
)
def test_body_without_content_length_is_capped_while_reading(
    sidecar: TestClient, engine: Engine, seeded: Seeded, path: str
) -> None:
    app = sidecar.app
    assert isinstance(app, FastAPI)
    status = asyncio.run(_raw_post(app, path, [b"x" * 65_536] * 16 + [b"x"]))
    assert status == 413
    assert stored(engine) == (0, 0)


# -- unknown receivers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/stripe/nobody",
        "/webhooks/sendgrid/nobody",
        "/webhooks/zoho/nobody",
        "/webhooks/generic/424242",
    ],
)
def test_unknown_workspace_or_integration_is_404(
    sidecar: TestClient, engine: Engine, path: str
) -> None:
    body = stripe_event()
    response = sidecar.post(path, content=body, headers=_stripe_headers(body))
    assert response.status_code == 404
    assert stored(engine) == (0, 0)


# -- logs ---------------------------------------------------------------------------------------


def test_rejection_is_logged_with_reason_and_without_body_or_signature(
    sidecar: TestClient, seeded: Seeded
) -> None:
    body = stripe_event()
    signature = f"t={now()},v1={stripe_v1(body, 'whsec_wrong', now())}"
    with structlog.testing.capture_logs() as logs:
        sidecar.post(
            f"/webhooks/stripe/{seeded.slug}", content=body, headers={"Stripe-Signature": signature}
        )
    rejected = [entry for entry in logs if entry["event"] == "webhook rejected"]
    assert rejected == [
        {
            "event": "webhook rejected",
            "log_level": "warning",
            "provider": "stripe",
            "workspace": "acme",
            "status": 401,
            "reason": "no signature matches",
        }
    ]
    text = repr(logs)
    for leaked in (signature.split("v1=")[1], STRIPE_SECRET, "amount_paid", "evt_1"):
        assert leaked not in text


# -- the cron's outbox run -----------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"X-Cron-Secret": "wrong"}, {"X-Cron-Secret": ""}])
def test_outbox_run_refuses_without_the_cron_secret(
    sidecar: TestClient, headers: dict[str, str]
) -> None:
    response = sidecar.post("/outbox/run", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "missing or wrong X-Cron-Secret"}


def test_outbox_run_drains_the_stored_event(
    sidecar: TestClient, engine: Engine, seeded: Seeded
) -> None:
    body = stripe_event(event_type="test.unhandled")
    sidecar.post(f"/webhooks/stripe/{seeded.slug}", content=body, headers=_stripe_headers(body))
    response = sidecar.post("/outbox/run", headers={"X-Cron-Secret": CRON_SECRET})
    assert response.status_code == 200, response.text
    report = response.json()
    assert set(report) == {"claimed", "done", "retried", "dead", "errors"}
    assert (report["claimed"], report["done"]) == (1, 1)


# -- metrics -------------------------------------------------------------------------------------


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_show_requests_failures_and_backlog(sidecar: TestClient, seeded: Seeded) -> None:
    url = f"/webhooks/stripe/{seeded.slug}"
    body = stripe_event()
    sidecar.post(url, content=body, headers=_stripe_headers(body))
    sidecar.post(url, content=body, headers={"Stripe-Signature": f"t={now()},v1=bad"})
    sidecar.post(url, content=body, headers={})
    sidecar.post(url, content=_padded_event(MIB + 1))
    response = sidecar.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, frozenset(labels.items())))

    route = "/webhooks/stripe/{workspace}"
    assert value("sidecar_requests_total", route=route, method="POST", status="200") == 1
    assert value("sidecar_requests_total", route=route, method="POST", status="401") == 2
    assert value("sidecar_requests_total", route=route, method="POST", status="413") == 1
    assert (
        value("sidecar_webhook_verification_failures_total", provider="stripe", reason="no_match")
        == 1
    )
    assert (
        value(
            "sidecar_webhook_verification_failures_total",
            provider="stripe",
            reason="missing_header",
        )
        == 1
    )
    assert value("sidecar_outbox_jobs", kind="inbox.process", status="pending") == 1
    lag = value("sidecar_inbox_lag_seconds")
    assert lag is not None and lag >= 0
    assert value("sidecar_metrics_database_up") == 1


def test_unmatched_paths_share_one_metrics_label(sidecar: TestClient) -> None:
    for path in ("/nope", "/wp-login.php", "/a/b/c"):
        assert sidecar.get(path).status_code == 404
    samples = _samples(sidecar.get("/metrics").text)
    labels = frozenset({"route": "unmatched", "method": "GET", "status": "404"}.items())
    assert samples[("sidecar_requests_total", labels)] == 3


# -- OpenAPI -------------------------------------------------------------------------------------


def test_openapi_documents_every_route_and_its_errors(sidecar: TestClient) -> None:
    paths = sidecar.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/healthz",
        "/readyz",
        "/metrics",
        "/outbox/run",
        "/webhooks/stripe",
        "/webhooks/stripe/{workspace}",
        "/webhooks/sendgrid/{workspace}",
        "/webhooks/zoho/{workspace}",
        "/webhooks/generic/{integration}",
        "/oauth/stripe/start",
        "/oauth/stripe/callback",
        "/oauth/google/start",
        "/oauth/google/callback",
        "/forms/{workspace_slug}",
        "/forms/{workspace_slug}/leads",
        "/u/{token}",
        "/preferences/{token}",
        "/x/{token}",
        "/x/{token}/fresh",
    }
    for path in (
        "/webhooks/stripe/{workspace}",
        "/webhooks/sendgrid/{workspace}",
        "/webhooks/zoho/{workspace}",
        "/webhooks/generic/{integration}",
    ):
        assert set(paths[path]["post"]["responses"]) == {"200", "400", "401", "404", "413"}
        assert "application/json" in paths[path]["post"]["requestBody"]["content"]
    assert set(paths["/outbox/run"]["post"]["responses"]) == {"200", "401"}
    # No route advertises FastAPI's own 422 (bodies are read by the routes); the lead form's
    # 422 is its own, a message per field.
    assert all(
        "422" not in op["responses"]
        for path, item in paths.items()
        if path != "/forms/{workspace_slug}/leads"
        for op in item.values()
    )
