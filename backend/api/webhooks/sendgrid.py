"""SendGrid's signed Event Webhook: a JSON array of events, each stored as its own inbound
event (keyed by ``sg_event_id``), all in one transaction.

The key is public (ECDSA P-256), kept in the integration's settings, not its sealed secrets.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from sqlalchemy import Engine

from backend.api.webhooks.common import (
    JSON_ARRAY_BODY,
    MAX_EVENT_TYPE,
    MAX_EXTERNAL_ID,
    AppSettings,
    BatchReceived,
    Intake,
    Now,
    RawBody,
    Rejected,
    error_responses,
    parse_json,
    store_all,
    text_field,
    verified,
    workspace_receiver,
)
from backend.db import get_engine
from backend.security.webhooks import load_sendgrid_public_key, verify_sendgrid

router = APIRouter(prefix="/webhooks/sendgrid", tags=["webhooks"])


def _events(body: bytes, intake: Intake) -> list[dict[str, Any]]:
    value = parse_json(body, intake)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise Rejected(400, "body must be a JSON array of event objects", intake, "malformed_body")
    return value


@router.post(
    "/{workspace}",
    response_model=BatchReceived,
    responses=error_responses(),
    openapi_extra=JSON_ARRAY_BODY,
)
def events(
    workspace: str,
    body: RawBody,
    engine: Annotated[Engine, Depends(get_engine)],
    settings: AppSettings,
    now: Now,
    signature: Annotated[str | None, Header(alias="X-Twilio-Email-Event-Webhook-Signature")] = None,
    timestamp: Annotated[str | None, Header(alias="X-Twilio-Email-Event-Webhook-Timestamp")] = None,
) -> BatchReceived:
    """A batch of email events from a workspace's SendGrid account."""
    intake = Intake(provider="sendgrid", workspace=workspace)
    # The key is public: in the integration's settings, so no sealed secret is asked for.
    receiver = workspace_receiver(engine, intake, slug=workspace, providers=["sendgrid"], key=None)
    public_key = receiver.settings.get("event_webhook_public_key")
    try:
        load_sendgrid_public_key(str(public_key or ""))
    except ValueError as exc:
        raise Rejected(
            404,
            "no usable event_webhook_public_key configured for sendgrid",
            intake,
            "not_configured",
        ) from exc
    verified(
        intake,
        lambda: verify_sendgrid(
            body,
            signature,
            timestamp,
            str(public_key),
            tolerance=settings.webhook_tolerance_seconds,
            now=now,
        ),
    )
    batch = _events(body, intake)
    # Validate the whole batch before storing any of it: a 400 must store nothing.
    keyed = [
        (
            text_field(
                event, "sg_event_id", intake, max_length=MAX_EXTERNAL_ID, where=f"event {index}"
            ),
            text_field(event, "event", intake, max_length=MAX_EVENT_TYPE, where=f"event {index}"),
            event,
        )
        for index, event in enumerate(batch)
    ]
    # Scoped by integration: sg_event_id is the SendGrid account's, which two workspaces may
    # share.
    stored = store_all(
        engine,
        intake,
        keyed,
        workspace_id=receiver.workspace_id,
        integration_id=receiver.integration_id,
    )
    return BatchReceived(stored=stored, duplicates=len(keyed) - stored)
