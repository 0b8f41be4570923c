"""Stripe webhooks: a workspace's own account (``/webhooks/stripe/{workspace}``, secret in its
Stripe integration) and the platform's account for plans (``/webhooks/stripe``, secret in
settings).

Verified with hmac directly and parsed with ``json.loads``: ``stripe.Webhook.construct_event``
builds a StripeObject and is ~60x slower on this hot path.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header
from sqlalchemy import Engine

from backend.api.webhooks import (
    JSON_OBJECT_BODY,
    MAX_EVENT_TYPE,
    MAX_EXTERNAL_ID,
    AppSettings,
    Intake,
    Now,
    RawBody,
    Received,
    error_responses,
    json_object,
    secret_of,
    store,
    text_field,
    verified,
    workspace_integration,
)
from backend.db import get_engine, session_scope
from backend.security.webhooks import verify_stripe

router = APIRouter(prefix="/webhooks/stripe", tags=["webhooks"])

SignatureHeader = Annotated[str | None, Header(alias="Stripe-Signature")]
EngineDep = Annotated[Engine, Depends(get_engine)]


@router.post(
    "/{workspace}",
    response_model=Received,
    responses=error_responses(),
    openapi_extra=JSON_OBJECT_BODY,
)
def workspace_event(
    workspace: str,
    body: RawBody,
    engine: EngineDep,
    settings: AppSettings,
    now: Now,
    stripe_signature: SignatureHeader = None,
) -> Received:
    """An event from a workspace's connected Stripe account."""
    intake = Intake(provider="stripe", workspace=workspace)
    with session_scope(engine) as session:
        integration = workspace_integration(session, intake, slug=workspace, providers=["stripe"])
        secret = str(secret_of(integration, intake, "webhook_signing_secret"))
        verified(
            intake,
            lambda: verify_stripe(
                body,
                stripe_signature,
                [secret],
                tolerance=settings.webhook_tolerance_seconds,
                now=now,
            ),
        )
        payload = json_object(body, intake)
        stored = store(
            session,
            intake,
            external_id=text_field(payload, "id", intake, max_length=MAX_EXTERNAL_ID),
            event_type=text_field(payload, "type", intake, max_length=MAX_EVENT_TYPE),
            workspace_id=integration.workspace_id,
            payload=payload,
        )
    return Received(duplicate=not stored)


@router.post(
    "",
    response_model=Received,
    responses=error_responses(400, 401, 413),
    openapi_extra=JSON_OBJECT_BODY,
)
def platform_event(
    body: RawBody,
    engine: EngineDep,
    settings: AppSettings,
    now: Now,
    stripe_signature: SignatureHeader = None,
) -> Received:
    """An event from the platform's own Stripe account (subscriptions and upgrades)."""
    intake = Intake(provider="stripe_platform")
    secret = settings.platform_stripe_webhook_secret.get_secret_value()
    # No lookup needed: verified before the database is touched at all.
    verified(
        intake,
        lambda: verify_stripe(
            body, stripe_signature, [secret], tolerance=settings.webhook_tolerance_seconds, now=now
        ),
    )
    payload = json_object(body, intake)
    external_id = text_field(payload, "id", intake, max_length=MAX_EXTERNAL_ID)
    event_type = text_field(payload, "type", intake, max_length=MAX_EVENT_TYPE)
    with session_scope(engine) as session:
        stored = store(
            session,
            intake,
            external_id=external_id,
            event_type=event_type,
            workspace_id=None,
            payload=payload,
        )
    return Received(duplicate=not stored)
