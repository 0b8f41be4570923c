"""Zoho webhooks (Books or CRM): Zoho signs nothing, so the workspace's integration holds a
shared secret that Zoho sends back in ``X-Zoho-Secret``; it is compared in constant time.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from sqlalchemy import Engine

from backend.api.webhooks.common import (
    JSON_OBJECT_BODY,
    MAX_EVENT_TYPE,
    MAX_EXTERNAL_ID,
    Intake,
    RawBody,
    Received,
    Rejected,
    error_responses,
    json_object,
    store,
    verified,
    workspace_receiver,
)
from backend.db import get_engine
from backend.security.webhooks import verify_shared_secret

router = APIRouter(prefix="/webhooks/zoho", tags=["webhooks"])

PROVIDERS = ("zoho_books", "zoho_crm")


def _optional_text(
    payload: dict[str, Any], key: str, intake: Intake, max_length: int
) -> str | None:
    value = payload.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Rejected(400, f"body {key!r} must be a string", intake, "malformed_body")
    text = str(value)
    if len(text) > max_length:
        raise Rejected(
            400, f"body {key!r} is longer than {max_length} characters", intake, "malformed_body"
        )
    return text


@router.post(
    "/{workspace}",
    response_model=Received,
    responses=error_responses(),
    openapi_extra=JSON_OBJECT_BODY,
)
def event(
    workspace: str,
    body: RawBody,
    engine: Annotated[Engine, Depends(get_engine)],
    zoho_secret: Annotated[str | None, Header(alias="X-Zoho-Secret")] = None,
) -> Received:
    """A Zoho Books or Zoho CRM webhook for a workspace."""
    intake = Intake(provider="zoho", workspace=workspace)
    receiver = workspace_receiver(
        engine, intake, slug=workspace, providers=PROVIDERS, key="webhook_secret"
    )
    intake = Intake(provider=receiver.provider, workspace=workspace)
    secret = str(receiver.secret)
    verified(intake, lambda: verify_shared_secret(zoho_secret, [secret], header="X-Zoho-Secret"))
    payload = json_object(body, intake)
    # Zoho's payloads do not always carry an id: the body's hash makes a retry of the same
    # body a duplicate, which is what a missing id can best mean.
    # Stored with its integration, which scopes the de-duplication (the same id or body from
    # two workspaces is two events); the id's integration prefix, which did that before,
    # stays so that a retry of an event stored before is still recognised.
    external_id = f"{receiver.integration_id}:" + (
        _optional_text(payload, "event_id", intake, MAX_EXTERNAL_ID - 12)
        or hashlib.sha256(body).hexdigest()
    )
    event_type = (
        _optional_text(payload, "event_type", intake, MAX_EVENT_TYPE)
        or _optional_text(payload, "operation", intake, MAX_EVENT_TYPE)
        or "unknown"
    )
    stored = store(
        engine,
        intake,
        external_id=external_id,
        event_type=event_type,
        workspace_id=receiver.workspace_id,
        integration_id=receiver.integration_id,
        payload=payload,
    )
    return Received(duplicate=not stored)
