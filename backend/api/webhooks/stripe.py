"""Stripe webhooks: a workspace's own account (``/webhooks/stripe/{workspace}``, secret in its
Stripe integration) and the platform's account for plans (``/webhooks/stripe``, secret in
settings).

Verified with hmac directly and parsed with ``json.loads``: ``stripe.Webhook.construct_event``
builds a StripeObject and is ~60x slower on this hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Request, Response
from sqlalchemy import Engine
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.api.webhooks.common import (
    JSON_OBJECT_BODY,
    MAX_EVENT_TYPE,
    MAX_EXTERNAL_ID,
    AppSettings,
    Intake,
    Now,
    RawBody,
    Received,
    app_settings,
    error_responses,
    intake_engine,
    json_object,
    json_object_text,
    raw_body,
    request_time,
    store,
    store_verified,
    text_field,
    verified,
)
from backend.api.webhooks.receivers import verified_receiver
from backend.db import get_engine
from backend.security.webhooks import verify_stripe

router = APIRouter(prefix="/webhooks/stripe", tags=["webhooks"])

SignatureHeader = Annotated[str | None, Header(alias="Stripe-Signature")]
EngineDep = Annotated[Engine, Depends(get_engine)]
# Stripe's events are a few KB, parsed in ~30 µs; a body far larger is parsed off the loop.
_PARSE_ON_LOOP_MAX_BYTES = 64 * 1024
# The two answers of the hot route, serialized once.
_STORED = Received().model_dump_json().encode()
_DUPLICATE = Received(duplicate=True).model_dump_json().encode()


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
    stripe_signature: SignatureHeader = None,
) -> Response:
    """An event from a workspace's connected Stripe account."""
    # Served by WorkspaceEventLane (below) in the sidecar; declared here for the OpenAPI
    # document, and for any app that mounts this router without the lane.
    return await receive_workspace_event(request, workspace, body, stripe_signature)


async def receive_workspace_event(
    request: Request, workspace: str, body: bytes, stripe_signature: str | None
) -> Response:
    """Verify and store a workspace's Stripe event: the sidecar's hot path, so async, verified
    on the event loop against a cached secret, stored by the batching writer; no thread hop
    unless the secret must be looked up. Refusals raise (Rejected …) as in every route."""
    engine = await intake_engine(request)
    settings = app_settings(request)
    now = request_time(request)
    intake = Intake(provider="stripe", workspace=workspace)
    receiver = await verified_receiver(
        request,
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
    if len(body) <= _PARSE_ON_LOOP_MAX_BYTES:
        payload, document = json_object_text(body, intake)
    else:
        payload, document = await to_thread.run_sync(json_object_text, body, intake)
    stored = await store_verified(
        request,
        engine,
        intake,
        external_id=text_field(payload, "id", intake, max_length=MAX_EXTERNAL_ID),
        event_type=text_field(payload, "type", intake, max_length=MAX_EVENT_TYPE),
        workspace_id=receiver.workspace_id,
        # Scoped by integration: one Stripe account connected to two workspaces sends each
        # its copy of an event, with one id.
        integration_id=receiver.integration_id,
        payload=payload,
        payload_json=document,
    )
    return Response(_STORED if stored else _DUPLICATE, media_type="application/json")


class WorkspaceEventLane:
    """Serves ``POST /webhooks/stripe/{workspace}``, the sidecar's busiest route, straight from
    the ASGI scope: the same code as the route (``receive_workspace_event``), the same
    exception handlers, request metrics and body limit (the middlewares outside this one), but
    not FastAPI's routing, dependency resolution and response handling, which cost ~40% of the
    route's CPU (measured: ~450 against ~270 µs a request, bench/bench_ingest.py). Any other
    request goes on to the app unchanged.

    Install it as the innermost middleware (add it first), so that the metrics and the body
    limit wrap it.
    """

    _PREFIX = "/webhooks/stripe/"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route: BaseRoute = next(
            route for route in router.routes if getattr(route, "endpoint", None) is workspace_event
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        workspace = self._workspace(scope)
        if workspace is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        # What the router would set: the metrics label requests by this route's template.
        scope["route"] = self._route
        scope["path_params"] = {"workspace": workspace}
        try:
            body = await raw_body(request)
            response = await receive_workspace_event(
                request, workspace, body, request.headers.get("stripe-signature")
            )
        except Exception as exc:
            handler = _exception_handler(request, exc)
            if handler is None:
                raise
            if is_async_callable(handler):
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)

    def _workspace(self, scope: Scope) -> str | None:
        """The workspace when ``scope`` is a POST to this route (the router's match), else None."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path + "/"):
            path = path[len(root_path) :]
        if not path.startswith(self._PREFIX):
            return None
        workspace = path[len(self._PREFIX) :]
        return workspace if workspace and "/" not in workspace else None


def _exception_handler(request: Request, exc: Exception) -> Callable[..., Any] | None:
    """The app's handler for ``exc``, looked up as Starlette's ExceptionMiddleware does."""
    handlers: dict[Any, Callable[..., Any]] = request.app.exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


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
    stored = store(
        engine,
        intake,
        external_id=external_id,
        event_type=event_type,
        workspace_id=None,
        # The platform's own account: no integration; its ids are unique by provider.
        integration_id=None,
        payload=payload,
    )
    return Received(duplicate=not stored)
