"""Prometheus metrics of the sidecar: request counts, verification failures, and the inbox and
outbox backlog read from the database at scrape time.

Each app gets its own CollectorRegistry, so test apps (and several apps in one process) do not
share or collide on counters.

Tested in tests/api/webhooks/test_intake.py ("metrics").
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
            "1 when the last scrape could read the backlog from the database.",
            registry=self.registry,
        )

    def refresh_backlog(self, engine: Engine) -> None:
        """Read the gauges from the database; a failure leaves the counters scrapeable."""
        try:
            waiting = backlog.read(engine)
        except SQLAlchemyError as exc:
            log.warning("metrics backlog unavailable", error=type(exc).__name__)
            self.database_up.set(0)
            return
        self.database_up.set(1)
        self.inbox_lag.set(waiting.inbox_lag_seconds)
        # Cleared first so that a (kind, status) pair that emptied does not keep its last count.
        self.queue_depth.clear()
        for row in waiting.queue_depth:
            self.queue_depth.labels(kind=row.kind, status=str(row.status)).set(row.count)


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


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
def scrape(request: Request, engine: Annotated[Engine, Depends(get_engine)]) -> Response:
    """Prometheus text exposition; backlog gauges are read from the database on each scrape."""
    metrics = metrics_of(request)
    metrics.refresh_backlog(engine)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
