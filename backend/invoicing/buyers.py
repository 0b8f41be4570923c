"""Buyers as Stripe customers: found or created once, by the outbox.

Tested in tests/jobs/test_reliability.py and tests/invoicing/test_stripe_invoices.py.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from backend.connections import providers
from backend.platform import outbox
from models import Buyer

SYNC_CUSTOMER = "stripe.sync_customer"


def request_customer_sync(session: Session, *, buyer: Buyer) -> int | None:
    return outbox.enqueue(
        session,
        kind=SYNC_CUSTOMER,
        payload={"buyer_id": buyer.id},
        idempotency_key=f"stripe-customer:{buyer.workspace_id}:{buyer.platform_user_id}",
        workspace_id=buyer.workspace_id,
    )


def sync_customer(session: Session, job: outbox.JobContext) -> None:
    buyer = session.get_one(Buyer, job.payload["buyer_id"])
    if buyer.stripe_customer_id:
        return
    stripe = providers.stripe_for(session, workspace_id=buyer.workspace_id)
    platform_user_id, email, handle = buyer.platform_user_id, buyer.email, buyer.handle
    customer_id = job.call_provider(
        lambda: stripe.ensure_customer(
            platform_user_id=platform_user_id,
            email=email,
            name=handle,
            idempotency_key=job.provider_key("customer"),
        )
    )
    buyer.stripe_customer_id = customer_id
