"""Provider calls as the call log writes them (rows, minute rollups, the latest per provider),
for tests that arrange a history of calls without making them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from backend.integrations.call_log import ProviderCall
from backend.platform import call_log_writer
from models import utcnow


def call(
    workspace_id: int | None,
    provider: str = "stripe",
    *,
    outcome: str = "ok",
    operation: str = "POST /v1/invoices",
    at: dt.datetime | None = None,
    latency_ms: int = 120,
    error: str | None = None,
    http_status: int | None = None,
    integration_id: int | None = None,
    job_id: int | None = None,
) -> ProviderCall:
    failed = outcome != "ok"
    return ProviderCall(
        provider=provider,
        operation=operation,
        outcome=outcome,
        http_status=http_status if http_status is not None else (503 if failed else 200),
        latency_ms=latency_ms,
        error=error if error is not None else ("HTTP 503 Service Unavailable" if failed else None),
        at=at or utcnow(),
        workspace_id=workspace_id,
        integration_id=integration_id,
        job_id=job_id,
    )


def add_calls(session: Session, *calls: ProviderCall) -> None:
    """Write ``calls`` in ``session`` (flushed, not committed), as the writer would."""
    call_log_writer.write(session, calls)
    session.flush()
