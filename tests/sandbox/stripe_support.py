"""Helpers for the Stripe emulator's tests: an SDK client pointed at the sandbox, a fresh test
account, and reading verified events from the webhook receiver."""

from __future__ import annotations

import json
from typing import Any

import httpx
import stripe

from tests.support.servers import WebhookReceiver


def client(url: str, key: str, **options: Any) -> stripe.StripeClient:
    return stripe.StripeClient(
        key,
        base_addresses={"api": f"{url}/stripe", "connect": f"{url}/stripe/connect"},
        max_network_retries=0,
        **options,
    )


def new_account(url: str, **body: Any) -> dict[str, str]:
    response = httpx.post(f"{url}/stripe/_sandbox/accounts", json=body, timeout=10)
    response.raise_for_status()
    created: dict[str, str] = response.json()
    return created


def listen(sdk: stripe.StripeClient, receiver: WebhookReceiver, path: str = "/hook") -> str:
    """Register the receiver as a webhook endpoint; returns its signing secret."""
    endpoint = sdk.v1.webhook_endpoints.create(
        {"url": receiver.url + path, "enabled_events": ["*"]}
    )
    assert endpoint.secret
    return str(endpoint.secret)


def verified_events(
    receiver: WebhookReceiver, secret: str, path: str = "/hook"
) -> list[stripe.Event]:
    """Every delivery to ``path``, each checked with the SDK's own signature verification."""
    with receiver.lock:
        received = [r for r in receiver.received if r.path == path]
    return [
        stripe.Webhook.construct_event(r.body.decode(), r.headers["stripe-signature"], secret)
        for r in received
    ]


def wait_for_types(
    receiver: WebhookReceiver,
    secret: str,
    types: list[str],
    path: str = "/hook",
    timeout: float = 10.0,
) -> list[stripe.Event]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        events = verified_events(receiver, secret, path)
        seen = [e.type for e in events]
        if all(t in seen for t in types):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"missing events {set(types) - set(seen)}; got {seen}")
        time.sleep(0.05)


def as_dict(obj: Any) -> Any:
    return json.loads(str(obj)) if not isinstance(obj, dict) else obj
