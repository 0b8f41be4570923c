"""The webhook sidecar: a FastAPI app that providers call. It verifies and stores webhooks
before answering, lets a cron drain the outbox, and exposes health, readiness and metrics."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from backend.api import (
    cron,
    forms,
    links,
    metrics,
    oauth,
    preferences,
    scheduler_watch,
    unsubscribe,
)
from backend.api.limits import BodySizeLimit, BodyTooLarge
from backend.api.webhooks import common as webhooks
from backend.api.webhooks import generic as generic_webhooks
from backend.api.webhooks import sendgrid as sendgrid_webhooks
from backend.api.webhooks import stripe as stripe_webhooks
from backend.api.webhooks import zoho as zoho_webhooks
from backend.config import Settings, get_settings
from backend.connections import credentials
from backend.db import get_engine
from backend.logging import configure
from backend.platform import call_log_writer, readiness

log = structlog.get_logger("sidecar")


DOCS_ASSETS_URL = "/docs-assets"


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    reason: str
    database_revision: str | None
    code_revision: str | None


def _on_invalid_request(request: Request, exc: Exception) -> JSONResponse:
    # Every parameter is a plain string, so this is rare; a 400 says "your request" plainly.
    assert isinstance(exc, RequestValidationError)
    where = sorted({".".join(str(part) for part in error.get("loc", ())) for error in exc.errors()})
    return JSONResponse({"detail": f"malformed request: {', '.join(where)}"}, status_code=400)


def _on_too_large(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyTooLarge)
    log.warning("request rejected", reason="body too large", path=request.url.path, status=413)
    return JSONResponse({"detail": exc.detail}, status_code=413)


def _on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Not the sender's fault and usually brief (a lock, a failover): 503 asks it to retry,
    # which every provider does, and nothing was stored.
    log.error("database unavailable", path=request.url.path, error=type(exc).__name__)
    return JSONResponse(
        {"detail": "database unavailable; retry later"},
        status_code=503,
        headers={"Retry-After": "30"},
    )


def _without_422(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document minus FastAPI's automatic 422s: invalid requests answer 400 here
    (see _on_invalid_request), and the document should say what the service really does."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = document.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = document
        return app.openapi_schema

    return build


class CredentialKeysMissing(RuntimeError):
    """Stored credentials use a key the ring lacks: the sidecar refuses to start."""


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Webhook verification reads workspaces' sealed secrets: with a key missing from the ring
    # every such webhook would fail with 401s the providers then retry for days. Refuse now.
    problem = credentials.startup_problem(get_engine())
    if problem:
        log.error("sidecar not started", reason=problem)
        raise CredentialKeysMissing(problem)
    if getattr(app.state, "served", False):
        # The process's logging, as the scheduler's: the level setting applies (without this
        # structlog's defaults printed every stored webhook, whatever HUB_LOG_LEVEL said).
        configure(app.state.settings.log_level)
        # OAuth exchanges and the cron-run outbox call providers from here: their call log.
        call_log_writer.start_for_process(get_engine)
        _settle_heap()
    every = app.state.settings.scheduler_watch_seconds
    if not getattr(app.state, "watch_scheduler", False):
        every = 0  # apps that tests build leave the database alone unless they ask
    alert_url = app.state.settings.platform_alert_url
    async with scheduler_watch.running(get_engine(), every, alert_url):
        yield


def _settle_heap() -> None:
    """What is loaded by now (FastAPI, SQLAlchemy, pydantic, the app: ~150,000 objects)
    lives as long as the process: move it out of the cyclic garbage collector's sight, so that
    its full collections scan only what requests allocate. Measured on the webhook hot path:
    ~25% less CPU a request (bench/bench_ingest.py)."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the sidecar. ``settings`` defaults to the process's (tests pass their own)."""
    settings = settings or get_settings()
    about: dict[str, Any] = {
        "title": "Integrations Hub sidecar",
        "version": "0.1.0",
        "description": "Receives provider webhooks, verifies and stores them before answering.",
        "lifespan": _lifespan,
    }
    if settings.api_docs_served:
        # /docs and /redoc load Swagger UI's and ReDoc's scripts from files the package ships,
        # not from a CDN: FastAPI's own pages are blank on a machine without internet.
        app: FastAPI = FastAPIOffline(static_url=DOCS_ASSETS_URL, **about)
    else:
        # Live mode: the public sidecar does not describe itself to strangers (HUB_API_DOCS).
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **about)
    app.state.settings = settings
    app.state.metrics = metrics.SidecarMetrics()
    # Added last is outermost: the metrics see the size limit's 413s too, and both wrap the
    # lane that serves a workspace's Stripe events (the busiest route) without the router.
    app.add_middleware(stripe_webhooks.WorkspaceEventLane)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_webhook_body_bytes)
    app.add_middleware(metrics.RequestMetrics, metrics=app.state.metrics)
    webhooks.install(app)
    app.add_exception_handler(RequestValidationError, _on_invalid_request)
    app.add_exception_handler(BodyTooLarge, _on_too_large)
    app.add_exception_handler(OperationalError, _on_database_unavailable)
    for module in (
        stripe_webhooks,
        sendgrid_webhooks,
        zoho_webhooks,
        generic_webhooks,
        cron,
        metrics,
        oauth,
        unsubscribe,
        preferences,
        links,
        forms,
    ):
        app.include_router(module.router)
    app.openapi = _without_422(app)  # type: ignore[method-assign]

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """The process is up. Says nothing about the database (see /readyz)."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Ready,
        tags=["health"],
        responses={503: {"model": Ready, "description": "not ready, with the reason"}},
    )
    def readyz(engine: Annotated[Engine, Depends(get_engine)]) -> JSONResponse:
        """The database answers and is migrated to the revision this code expects."""
        state = readiness.check(engine)
        body = Ready(
            status="ready" if state.ready else "not ready",
            reason=state.reason,
            database_revision=state.database_revision,
            code_revision=state.code_revision,
        )
        return JSONResponse(body.model_dump(), status_code=200 if state.ready else 503)

    return app


app = create_app()
# The served app (uvicorn backend.api.app:app) configures logging and settles its heap at
# start-up; apps that tests build with create_app() leave the process's logging and garbage
# collector alone. It also watches the scheduler's heartbeat (backend/api/scheduler_watch.py).
app.state.served = True
app.state.watch_scheduler = True
