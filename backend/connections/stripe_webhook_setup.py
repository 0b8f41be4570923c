"""A connected Stripe account's events must reach our sidecar: when Stripe is connected without
a signing secret, a job registers a webhook endpoint on the account for
``/webhooks/stripe/{workspace}`` and stores the secret Stripe answers with, sealed with the keys.
An operator who pasted their own signing secret keeps theirs.

Tested in tests/invoicing/test_service.py, tests/invoicing/test_stripe_invoices.py and
tests/platform/test_alerts.py.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.connections import credentials, providers
from backend.platform import outbox
from models import Integration, IntegrationStatus, Workspace

REGISTER_KIND = "stripe.register_webhook"
EVENTS = [
    "invoice.finalized",
    "invoice.sent",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "payment_intent.succeeded",
    "charge.refunded",
    "charge.dispute.created",
]


def endpoint_url(workspace_slug: str) -> str:
    return f"{get_settings().public_sidecar_url.rstrip('/')}/webhooks/stripe/{workspace_slug}"


def request_if_needed(session: Session, integration: Integration) -> int | None:
    """Enqueue the registration for a newly (re)connected Stripe without a signing secret."""
    if integration.provider != "stripe" or integration.status is not IntegrationStatus.ACTIVE:
        return None
    if credentials.unseal(integration).get("webhook_signing_secret"):
        return None
    stamp = integration.connected_at.isoformat() if integration.connected_at else "first"
    return outbox.enqueue(
        session,
        kind=REGISTER_KIND,
        payload={"integration_id": integration.id},
        idempotency_key=f"stripe-webhook:{integration.id}:{stamp}",
        workspace_id=integration.workspace_id,
    )


def register(session: Session, job: outbox.JobContext) -> None:
    integration = session.get(Integration, job.payload["integration_id"])
    if integration is None or integration.status is not IntegrationStatus.ACTIVE:
        return  # disconnected meanwhile
    if credentials.unseal(integration).get("webhook_signing_secret"):
        return
    url = endpoint_url(session.get_one(Workspace, integration.workspace_id).slug)
    stripe = providers.stripe_for(session, workspace_id=integration.workspace_id)

    def replace_endpoint() -> tuple[str, str]:
        # Stripe shows a secret only when the endpoint is made: made first, then every other
        # endpoint for the same URL (a reconnect's, or one an earlier try made and died before
        # storing its secret) is removed, so exactly one delivers to us. In that order because
        # a rerun within 24 hours gets the first try's endpoint back from the key: deleting
        # first would delete it, and the key would still answer with its id and secret.
        made = stripe.create_webhook_endpoint(
            url=url,
            events=EVENTS,
            description="Integrations Hub",
            idempotency_key=job.provider_key(),
        )
        stripe.delete_webhook_endpoints(url=url, keep=made[0])
        return made

    endpoint_id, secret = job.call_provider(replace_endpoint)
    integration = session.get_one(Integration, job.payload["integration_id"])
    secrets = credentials.unseal(integration)
    secrets.update(webhook_signing_secret=secret, webhook_endpoint_id=endpoint_id)
    credentials.seal(integration, secrets)
