"""Prometheus metrics of the sidecar: request counts, verification failures, the inbox and
outbox backlog, and the providers' figures (calls, latency, breakers, open incidents:
backend/api/call_metrics.py) read from the database at scrape time (at most once per
``HUB_METRICS_CACHE_SECONDS``). A scrape sends ``HUB_METRICS_TOKEN`` as a bearer token when one
is set; in live mode without one only a loopback client is answered.

Each app gets its own CollectorRegistry, so test apps (and several apps in one process) do not
share or collide on counters.

Tested in tests/api/test_metrics.py (access, caching), tests/api/webhooks/test_intake.py
(the backlog) and tests/api/test_call_metrics.py (the providers' figures).
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.call_metrics import ProviderFigures
from backend.config import ProviderMode, Settings
from backend.db import get_engine
from backend.platform import backlog

log = structlog.get_logger("sidecar")


class SidecarMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sidecar_requests",
            "HTTP requests by route template and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.verification_failures = Counter(
            "sidecar_webhook_verification_failures",
            "Webhooks rejected for their signature, by provider and reason.",
            ["provider", "reason"],
            registry=self.registry,
        )
        self.inbox_lag = Gauge(
            "sidecar_inbox_lag_seconds",
            "Age of the oldest stored webhook event not yet handled.",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "sidecar_outbox_jobs",
            "Outbox jobs by kind and status.",
            ["kind", "status"],
            registry=self.registry,
        )
        self.database_up = Gauge(
            "sidecar_metrics_database_up",
            "1 when the last scrape could read the backlog and the provider figures.",
            registry=self.registry,
        )
        self.providers = ProviderFigures()
        self.registry.register(self.providers)
        # Scrapes run on the threadpool: one reads the backlog, the others wait and reuse it.
        self._backlog_lock = threading.Lock()
        self._backlog_read_at: float | None = None

    def refresh_backlog(self, engine: Engine, *, max_age: float = 0.0) -> None:
        """Read the gauges from the database unless a read younger than ``max_age`` seconds is
        there; a failure leaves the counters scrapeable (and is tried again next scrape)."""
        with self._backlog_lock:
            now = time.monotonic()
            if self._backlog_read_at is not None and now - self._backlog_read_at < max_age:
                return
            if self._read_backlog(engine):
                self._backlog_read_at = now

    def _read_backlog(self, engine: Engine) -> bool:
        try:
            waiting = backlog.read(engine)
            self.providers.read(engine)
        except SQLAlchemyError as exc:
            log.warning("metrics backlog unavailable", error=type(exc).__name__)
            self.database_up.set(0)
            return False
        self.database_up.set(1)
        self.inbox_lag.set(waiting.inbox_lag_seconds)
        # Cleared first so that a (kind, status) pair that emptied does not keep its last count.
        self.queue_depth.clear()
        for row in waiting.queue_depth:
            self.queue_depth.labels(kind=row.kind, status=str(row.status)).set(row.count)
        return True


def metrics_of(request: Request) -> SidecarMetrics:
    metrics: SidecarMetrics = request.app.state.metrics
    return metrics


def _route_template(scope: Scope) -> str:
    # The template, not the path: one series per route. Anything that matched no route is one
    # label, so scanners cannot grow the series without bound.
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestMetrics:
    """Counts every answered request, including ones rejected by middleware further in."""

    def __init__(self, app: ASGIApp, metrics: SidecarMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self.metrics.requests.labels(
                route=_route_template(scope),
                method=str(scope.get("method", "")),
                status=str(status),
            ).inc()


router = APIRouter(tags=["operations"])


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refusal(request: Request, settings: Settings) -> str | None:
    """Why this scrape may not see the figures, or None."""
    if settings.metrics_token is not None:
        sent = request.headers.get("authorization", "")
        expected = "Bearer " + settings.metrics_token.get_secret_value()
        if hmac.compare_digest(sent.encode(), expected.encode()):
            return None
        return "metrics need the bearer token set in HUB_METRICS_TOKEN"
    if settings.provider_mode is ProviderMode.LIVE:
        client = request.client.host if request.client else None
        if not _is_loopback(client):
            return (
                "metrics are served to this machine only; "
                "set HUB_METRICS_TOKEN to scrape from elsewhere"
            )
    return None


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"},
        401: {"description": "no or a wrong bearer token (HUB_METRICS_TOKEN)"},
    },
)
def scrape(
    request: Request,
    engine: Annotated[Engine, Depends(get_engine)],
) -> Response:
    """Prometheus text exposition; backlog gauges are read from the database at most once per
    ``HUB_METRICS_CACHE_SECONDS``."""
    settings: Settings = request.app.state.settings
    problem = refusal(request, settings)
    if problem is not None:
        log.warning("metrics scrape refused", reason=problem)
        raise HTTPException(401, detail=problem, headers={"WWW-Authenticate": "Bearer"})
    metrics = metrics_of(request)
    metrics.refresh_backlog(engine, max_age=settings.metrics_cache_seconds)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
