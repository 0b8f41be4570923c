"""Money never twice: a Stripe job that died after Stripe did the work, but before we recorded
it, is rerun by "Retry" or a replay long after Stripe forgot the call's idempotency key (24
hours; the sandbox's clock is moved, not waited for). The rerun must find what the first try
made: one invoice, one void, one customer, one webhook endpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.connections import credentials, stripe_webhook_setup
from backend.integrations.stripe import StripeAdapter
from backend.invoicing import buyers
from backend.invoicing import service as invoicing
from backend.platform import outbox_operators
from models import Buyer, Integration, InvoiceStatus, JobStatus, OutboxJob
from tests.sandbox.stripe_support import client
from tests.support.shop import Shop
from tests.support.shows import make_show

A_DAY_AND_AN_HOUR = 25 * 3600


def _die_after(monkeypatch: pytest.MonkeyPatch, method: str) -> Callable[[], None]:
    """Make ``StripeAdapter.<method>`` reach Stripe, then kill the job (a worker that died
    before it could record Stripe's answer). Returns what revives it."""
    real = getattr(StripeAdapter, method)

    def dying(self: StripeAdapter, *args: Any, **kwargs: Any) -> Any:
        real(self, *args, **kwargs)
        raise RuntimeError("the worker died before recording Stripe's answer")

    monkeypatch.setattr(StripeAdapter, method, dying)
    return lambda: monkeypatch.setattr(StripeAdapter, method, real)


def _last_try_only(shop: Shop, kind: str) -> None:
    """The queued job of ``kind`` gets one attempt: its failure makes it dead at once."""
    with Session(shop.engine) as session:
        session.execute(update(OutboxJob).where(OutboxJob.kind == kind).values(max_attempts=1))
        session.commit()


def _job(shop: Shop, kind: str) -> OutboxJob:
    with Session(shop.engine) as session:
        return session.scalars(select(OutboxJob).where(OutboxJob.kind == kind)).one()


def _replay(shop: Shop, kind: str) -> None:
    with Session(shop.engine) as session:
        assert outbox_operators.replay(session, actor=shop.owner, kind=kind) == 1
        session.commit()


def _all_invoices(shop: Shop) -> list[Any]:
    # Listed, not searched: a list shows every invoice at once, whatever search's lag.
    return list(client(shop.sandbox.url, shop.key).v1.invoices.list({"limit": 100}).data)


def _one_buyer_invoice(shop: Shop) -> int:
    show = make_show(shop.engine, workspace_id=shop.workspace_id, buyers=1, emails=True)
    with Session(shop.engine) as session:
        assert invoicing.generate_all(session, actor=shop.owner, show_id=show.id) == 1
        session.commit()
    return show.id


@pytest.mark.parametrize("search_lag", [0, 3600], ids=["search-current", "search-behind"])
def test_retry_a_day_after_a_crash_finds_the_invoice_instead_of_billing_twice(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, search_lag: int
) -> None:
    # Search behind: Stripe's search has not yet indexed anything the test made (it trails by
    # about a minute at Stripe), so only the lists (customers by email, the customer's
    # invoices) can find what the first try made.
    shop.sandbox.switch(stripe={"search_lag_seconds": search_lag})
    show_id = _one_buyer_invoice(shop)
    _last_try_only(shop, invoicing.CREATE_KIND)
    revive = _die_after(monkeypatch, "send_invoice")  # created, finalized and emailed; then died
    shop.drain()
    revive()
    (made,) = _all_invoices(shop)
    assert made.status == "open"
    (invoice,) = shop.invoices(show_id)
    assert invoice.status is InvoiceStatus.ERROR and invoice.external_id is None

    shop.sandbox.switch(clock={"offset_seconds": A_DAY_AND_AN_HOUR})  # every key forgotten
    with Session(shop.engine) as session:
        invoicing.retry(session, actor=shop.owner, invoice_id=invoice.id)  # the Retry button
        session.commit()
    shop.drain()

    assert [i.id for i in _all_invoices(shop)] == [made.id]
    (invoice,) = shop.invoices(show_id)
    assert invoice.external_id == made.id and invoice.status is InvoiceStatus.SENT
    assert _job(shop, invoicing.CREATE_KIND).status is JobStatus.DONE
    customers = client(shop.sandbox.url, shop.key).v1.customers.list().data
    assert [c.id for c in customers] == [made.customer]


def test_a_void_replayed_a_day_after_a_crash_records_the_void_stripe_made(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    show_id = _one_buyer_invoice(shop)
    shop.drain()
    (invoice,) = shop.invoices(show_id)
    with Session(shop.engine) as session:
        invoicing.void(session, actor=shop.owner, invoice_id=invoice.id)
        session.commit()
    _last_try_only(shop, invoicing.VOID_KIND)
    revive = _die_after(monkeypatch, "void_invoice")
    shop.drain()
    revive()
    assert _job(shop, invoicing.VOID_KIND).status is JobStatus.DEAD
    assert client(shop.sandbox.url, shop.key).v1.invoices.retrieve(invoice.external_id).status == (
        "void"
    )

    shop.sandbox.switch(clock={"offset_seconds": A_DAY_AND_AN_HOUR})
    _replay(shop, invoicing.VOID_KIND)
    shop.drain()

    assert _job(shop, invoicing.VOID_KIND).status is JobStatus.DONE
    (invoice,) = shop.invoices(show_id)
    assert invoice.status is InvoiceStatus.VOID


def test_a_customer_sync_replayed_a_day_after_a_crash_finds_the_customer_it_made(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Search behind, as in Stripe's first minute: the customer is found by its email.
    shop.sandbox.switch(stripe={"search_lag_seconds": 3600})
    make_show(shop.engine, workspace_id=shop.workspace_id, buyers=1, emails=True)
    with Session(shop.engine) as session:
        buyer = session.scalars(select(Buyer)).one()
        buyers.request_customer_sync(session, buyer=buyer)
        session.commit()
    _last_try_only(shop, buyers.SYNC_CUSTOMER)
    revive = _die_after(monkeypatch, "ensure_customer")
    shop.drain()
    revive()
    (made,) = client(shop.sandbox.url, shop.key).v1.customers.list().data

    shop.sandbox.switch(clock={"offset_seconds": A_DAY_AND_AN_HOUR})
    _replay(shop, buyers.SYNC_CUSTOMER)
    shop.drain()

    assert [c.id for c in client(shop.sandbox.url, shop.key).v1.customers.list().data] == [made.id]
    with Session(shop.engine) as session:
        assert session.scalars(select(Buyer.stripe_customer_id)).one() == made.id


def test_a_webhook_registration_rerun_keeps_the_endpoint_whose_secret_it_stores(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Session(shop.engine) as session:
        integration = session.scalars(
            select(Integration).where(Integration.provider == "stripe")
        ).one()
        stripe_webhook_setup.request_if_needed(session, integration)
        integration_id = integration.id
        session.commit()
    _last_try_only(shop, stripe_webhook_setup.REGISTER_KIND)
    revive = _die_after(monkeypatch, "create_webhook_endpoint")
    shop.drain()
    revive()

    # Within Stripe's 24 hours: the create's key answers with the first try's endpoint.
    _replay(shop, stripe_webhook_setup.REGISTER_KIND)
    shop.drain()

    with Session(shop.engine) as session:
        stored = credentials.unseal(session.get_one(Integration, integration_id))
    endpoints = client(shop.sandbox.url, shop.key).v1.webhook_endpoints.list().data
    ours = [e for e in endpoints if e.url.endswith("/webhooks/stripe/shop")]
    assert [e.id for e in ours] == [stored["webhook_endpoint_id"]]
