"""Standard Webhooks intake for any integration that signs that way, addressed by integration id.

The integration's ``signing_secrets`` is a list: during a roll both the new and the previous
secret verify, until the sender has switched.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header
from sqlalchemy import Engine

from backend.api.webhooks.common import (
    JSON_OBJECT_BODY,
    MAX_EVENT_TYPE,
    MAX_EXTERNAL_ID,
    AppSettings,
    Intake,
    Now,
    RawBody,
    Received,
    Rejected,
    error_responses,
    json_object,
    receiver_by_id,
    store,
    verified,
)
from backend.db import get_engine
from backend.security.webhooks import verify_standard

router = APIRouter(prefix="/webhooks/generic", tags=["webhooks"])


@router.post(
    "/{integration}",
    response_model=Received,
    responses=error_responses(),
    openapi_extra=JSON_OBJECT_BODY,
)
def event(
    integration: str,
    body: RawBody,
    engine: Annotated[Engine, Depends(get_engine)],
    settings: AppSettings,
    now: Now,
    webhook_id: Annotated[str | None, Header(alias="webhook-id")] = None,
    webhook_timestamp: Annotated[str | None, Header(alias="webhook-timestamp")] = None,
    webhook_signature: Annotated[str | None, Header(alias="webhook-signature")] = None,
) -> Received:
    """A Standard Webhooks message for one integration."""
    intake = Intake(provider="generic", workspace=None)
    receiver = receiver_by_id(engine, intake, integration, key="signing_secrets")
    intake = Intake(provider=receiver.provider, workspace=str(receiver.workspace_id))
    secrets = receiver.secret
    if isinstance(secrets, str):
        secrets = [secrets]
    verified(
        intake,
        lambda: verify_standard(
            body,
            webhook_id,
            webhook_timestamp,
            webhook_signature,
            [str(secret) for secret in secrets],
            tolerance=settings.webhook_tolerance_seconds,
            now=now,
        ),
    )
    assert webhook_id is not None  # verify_standard refuses a missing one
    if len(webhook_id) > MAX_EXTERNAL_ID - 12:
        raise Rejected(
            400,
            f"webhook-id is longer than {MAX_EXTERNAL_ID - 12} characters",
            intake,
            "malformed_body",
        )
    payload = json_object(body, intake)
    event_type = payload.get("type")
    if not isinstance(event_type, str) or not event_type:
        event_type = "unknown"
    stored = store(
        engine,
        intake,
        # Two senders may both use "msg_1": scoped by the integration (its column; the prefix,
        # from before the column, keeps earlier events' retries recognised).
        external_id=f"{receiver.integration_id}:{webhook_id}",
        event_type=event_type[:MAX_EVENT_TYPE],
        workspace_id=receiver.workspace_id,
        integration_id=receiver.integration_id,
        payload=payload,
    )
    return Received(duplicate=not stored)
