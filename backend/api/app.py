"""The webhook sidecar: a FastAPI app that providers call. Health and readiness for now;
the webhook routers are mounted here as they arrive."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine

from backend.db import get_engine
from backend.services import readiness


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    reason: str
    database_revision: str | None
    code_revision: str | None


def create_app() -> FastAPI:
    app = FastAPI(
        title="Integrations Hub sidecar",
        version="0.1.0",
        description="Receives provider webhooks, verifies and stores them before answering.",
    )

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
