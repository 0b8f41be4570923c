"""``POST /outbox/run``: lets an external cron drain the outbox where no scheduler runs.

Guarded by ``X-Cron-Secret``; bounded to a few seconds so the caller's HTTP timeout is never
the thing that stops it.

Tested in tests/api/webhooks/test_intake.py ("the cron's outbox run").
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import asdict
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Header, HTTPException
from pydantic import BaseModel
from sqlalchemy import Engine

from backend.api.webhooks.common import AppSettings, Problem
from backend.db import get_engine
from backend.jobs.runner import drain, worker_name

log = structlog.get_logger("sidecar")
router = APIRouter(tags=["operations"])

MAX_SECONDS = 5.0


class DrainBody(BaseModel):
    claimed: int
    done: int
    retried: int
    dead: int
    errors: list[str]


def _secret_matches(given: str | None, expected: str) -> bool:
    if not given:
        return False
    # Hashed first so the comparison's time does not depend on either length.
    return hmac.compare_digest(
        hashlib.sha256(given.encode("utf-8", "replace")).digest(),
        hashlib.sha256(expected.encode()).digest(),
    )


@router.post(
    "/outbox/run",
    response_model=DrainBody,
    responses={401: {"model": Problem, "description": "Missing or wrong X-Cron-Secret."}},
)
def run_outbox(
    engine: Annotated[Engine, Depends(get_engine)],
    settings: AppSettings,
    x_cron_secret: Annotated[str | None, Header(alias="X-Cron-Secret")] = None,
) -> DrainBody:
    """Run due outbox jobs for up to ~5 s and report what happened."""
    if not _secret_matches(x_cron_secret, settings.cron_secret.get_secret_value()):
        log.warning("outbox run refused", reason="missing or wrong X-Cron-Secret", status=401)
        raise HTTPException(status_code=401, detail="missing or wrong X-Cron-Secret")
    report = drain(engine, worker=f"{worker_name()}/cron", max_seconds=MAX_SECONDS)
    log.info("outbox run", claimed=report.claimed, done=report.done, dead=report.dead)
    return DrainBody(**asdict(report))
