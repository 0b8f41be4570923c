"""Stripe webhooks: a workspace's own account (``/webhooks/stripe/{workspace}``, secret in its
Stripe integration) and the platform's account for plans (``/webhooks/stripe``, secret in
settings).

Verified with hmac directly and parsed with ``json.loads``: ``stripe.Webhook.construct_event``
builds a StripeObject and is ~60x slower on this hot path.
"""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Request
from sqlalchemy import Engine

from backend.api.webhooks import (
    JSON_OBJECT_BODY,
    MAX_EVENT_TYPE,
    MAX_EXTERNAL_ID,
    AppSettings,
    Intake,
    IntakeEngine,
    Now,
    RawBody,
    Received,
    ReceiverCache,
    app_settings,
    error_responses,
    intake_limiter,
    json_object,
    json_object_text,
    receiver_cache,
    request_time,
    store,
    store_committed,
    text_field,
    verified,
    verified_for_workspace,
)
from backend.config import Settings
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
async def workspace_event(
    workspace: str,
    request: Request,
    body: RawBody,
    engine: IntakeEngine,
    stripe_signature: SignatureHeader = None,
) -> Received:
    """An event from a workspace's connected Stripe account."""
    settings = app_settings(request)
    now = request_time(request)
    receivers = receiver_cache(request)
    # The hot path of the sidecar: one hop to a worker thread for the lookup, verification and
    # the committed insert, instead of one for every plain-function dependency.
    return await to_thread.run_sync(
        _workspace_event,
        workspace,
        body,
        engine,
        settings,
        now,
        receivers,
        stripe_signature,
        limiter=intake_limiter(request),
    )


def _workspace_event(
    workspace: str,
    body: bytes,
    engine: Engine,
    settings: Settings,
    now: float,
    receivers: ReceiverCache,
    stripe_signature: str | None,
) -> Received:
    intake = Intake(provider="stripe", workspace=workspace)
    receiver = verified_for_workspace(
        receivers,
        engine,
        intake,
        slug=workspace,
        providers=["stripe"],
        key="webhook_signing_secret",
        check=lambda secret: verify_stripe(
            body,
            stripe_signature,
            [str(secret)],
            tolerance=settings.webhook_tolerance_seconds,
            now=now,
        ),
    )
    payload, document = json_object_text(body, intake)
    stored = store_committed(
        engine,
        intake,
        external_id=text_field(payload, "id", intake, max_length=MAX_EXTERNAL_ID),
        event_type=text_field(payload, "type", intake, max_length=MAX_EVENT_TYPE),
        workspace_id=receiver.workspace_id,
        payload=payload,
        payload_json=document,
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
