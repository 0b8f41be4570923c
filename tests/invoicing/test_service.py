"""Per-show invoices against the Stripe sandbox through the real SDK: generate, idempotency
under repeated and concurrent clicks, unpriced items, void and regenerate, the Messenger
fallback for checkout links, and out-of-order webhooks."""

from __future__ import annotations

import threading

import httpx
import pytest
import stripe
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.connections import credentials, stripe_webhook_setup
from backend.invoicing import checkout_links
from backend.invoicing import service as invoicing
from backend.platform import inbox
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, NotFound, PermissionDenied
from models import (
    Buyer,
    CheckoutLinkSend,
    InboundEvent,
    Integration,
    IntegrationStatus,
    Invoice,
    InvoiceStatus,
    OutboxJob,
    Role,
)
from tests.sandbox.stripe_support import client
from tests.support.hub_env import apply, connect_stripe
from tests.support.shop import Shop
from tests.support.shows import MadeShow, make_show


def _generate(shop: Shop, show: MadeShow) -> int:
    with Session(shop.engine) as session:
        queued = invoicing.generate_all(session, actor=shop.owner, show_id=show.id)
        session.commit()
    return queued


def test_one_finalized_invoice_per_buyer_and_nothing_new_on_a_second_click(shop: Shop) -> None:
    show = make_show(shop.engine, workspace_id=shop.workspace_id, buyers=6)
    assert _generate(shop, show) == 6
    shop.drain()
    ours = shop.invoices(show.id)
    assert shop.job_errors() == []
    theirs = {inv.id: inv for inv in shop.stripe_invoices(show.id)}  # type: ignore[attr-defined]
    assert len(ours) == 6 and len(theirs) == 6
    for invoice in ours:
        stripe_invoice = theirs[invoice.external_id]
        assert invoice.status is InvoiceStatus.SENT
        assert stripe_invoice.status == "open"  # type: ignore[attr-defined]
        assert stripe_invoice.collection_method == "send_invoice"  # type: ignore[attr-defined]
        assert stripe_invoice.description == "Your claims from Friday Finds"  # type: ignore[attr-defined]
        assert invoice.amount_cents == stripe_invoice.amount_due > 0  # type: ignore[attr-defined]
        assert invoice.amount_cents == sum(line["amount_cents"] for line in invoice.line_items)
        assert invoice.external_url == stripe_invoice.hosted_invoice_url  # type: ignore[attr-defined]
    # Buyers with an email got it from Stripe; the others need the link sent by hand.
    channels = sorted(invoice.link_channel or "" for invoice in ours)
    assert channels == ["email"] * 3 + ["manual"] * 3

    assert _generate(shop, show) == 0
    shop.drain()
    assert len(shop.invoices(show.id)) == 6 and len(shop.stripe_invoices(show.id)) == 6


def test_invoice_lines_read_as_a_buyer_expects_with_the_quantity_said_once(
    shop: Shop,
) -> None:
    """Buyer 0 claims two of item 1 and one of item 2: each line on Stripe's invoice names the
    item and its lot and says the quantity once; the amount is the line's total (Stripe refuses
    `amount` beside `quantity`, and the sandbox refuses it as Stripe does)."""
    show = make_show(
        shop.engine, workspace_id=shop.workspace_id, buyers=1, claims_per_buyer=2, items=3
    )
    assert _generate(shop, show) == 1
    shop.drain()
    (ours,) = shop.invoices(show.id)
    assert shop.job_errors() == []
    sdk = client(shop.sandbox.url, shop.key)
    lines = sdk.v1.invoices.line_items.list(str(ours.external_id)).data
    assert [(line.description, line.quantity, line.amount) for line in lines] == [
        ("Item 1 (lot 1) × 2", 1, 1000),
        ("Item 2 (lot 2)", 1, 1000),
    ]
    hosted = httpx.get(str(ours.external_url)).text
    assert "Item 1 (lot 1) × 2</td><td>Qty 1</td>" in hosted
    assert "#1 Item" not in hosted and " x2" not in hosted and " x 2" not in hosted


def test_the_sandbox_refuses_an_amount_with_a_quantity_as_stripe_does(shop: Shop) -> None:
    sdk = client(shop.sandbox.url, shop.key)
    customer = sdk.v1.customers.create({"email": "lines@example.com"})
    draft = sdk.v1.invoices.create(
        {"customer": customer.id, "collection_method": "send_invoice", "days_until_due": 7}
    )
    with pytest.raises(stripe.InvalidRequestError, match="amount, quantity"):
        sdk.v1.invoices.add_lines(
            str(draft.id),
            {"lines": [{"amount": 2000, "quantity": 2, "description": "Two of them"}]},  # type: ignore[typeddict-item]
        )


def test_concurrent_generate_clicks_make_one_invoice_per_buyer(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, hub_env: dict[str, str], db_url: str
) -> None:
    """Eight operators press "Generate all" at the same moment: one row and one job each."""
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url="http://127.0.0.1:9")
    workspace_id = connect_stripe(engine, secret_key="sk_test_" + "x" * 24)
    show = make_show(engine, workspace_id=workspace_id, buyers=40)
    owner = Actor(operator_id=1, workspace_id=workspace_id, role=Role.OWNER)
    start = threading.Barrier(8)
    queued: list[int] = []
    errors: list[BaseException] = []

    def click() -> None:
        try:
            start.wait()
            with Session(engine) as session:
                queued.append(invoicing.generate_all(session, actor=owner, show_id=show.id))
                session.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=click) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(queued) == 40
    with Session(engine) as session:
        invoices = session.scalar(select(func.count()).select_from(Invoice))
        jobs = session.scalar(
            select(func.count())
            .select_from(OutboxJob)
            .where(OutboxJob.kind == invoicing.CREATE_KIND)
        )
    assert (invoices, jobs) == (40, 40)


def test_an_unpriced_buyer_fails_with_a_reason_and_succeeds_after_pricing(shop: Shop) -> None:
    # Buyer 0 claims items 1-3, buyer 1 items 2-4: item 1 unpriced leaves buyer 0 with a
    # zero line; make buyer 0's only items unpriced by claiming one item each.
    show = make_show(
        shop.engine, workspace_id=shop.workspace_id, buyers=2, claims_per_buyer=1, unpriced=(1,)
    )
    assert _generate(shop, show) == 2
    shop.drain()
    failed, made = shop.invoices(show.id)
    assert failed.status is InvoiceStatus.ERROR and failed.external_id is None
    assert "unpriced" in (failed.error_message or "") and "@b0000" in (failed.error_message or "")
    assert made.status is InvoiceStatus.SENT

    with Session(shop.engine) as session:
        with pytest.raises(InvalidInput, match="not a price"):
            invoicing.set_item_price(
                session, actor=shop.owner, item_id=show.item_ids[0], price="ten"
            )
        invoicing.set_item_price(
            session, actor=shop.owner, item_id=show.item_ids[0], price="$12.50"
        )
        invoicing.retry(session, actor=shop.owner, invoice_id=failed.id)
        session.commit()
    shop.drain()
    retried = shop.invoices(show.id)[0]
    assert retried.status is InvoiceStatus.SENT and retried.amount_cents == 1250 * 2
    assert len(shop.stripe_invoices(show.id)) == 2


def test_void_then_regenerate_makes_a_second_invoice_and_keeps_the_first(shop: Shop) -> None:
    show = make_show(shop.engine, workspace_id=shop.workspace_id, buyers=2)
    _generate(shop, show)
    shop.drain()
    first = shop.invoices(show.id)[0]
    with Session(shop.engine) as session:
        with pytest.raises(InvalidInput, match="voided"):
            invoicing.regenerate(session, actor=shop.owner, invoice_id=first.id)
        invoicing.void(session, actor=shop.owner, invoice_id=first.id)
        session.commit()
    shop.drain()
    assert shop.invoices(show.id)[0].status is InvoiceStatus.VOID
    with Session(shop.engine) as session:
        second_id = invoicing.regenerate(session, actor=shop.owner, invoice_id=first.id)
        session.commit()
    shop.drain()
    assert _generate(shop, show) == 0  # the voided buyer is invoiced, not "without invoice"
    with Session(shop.engine) as session:
        second = session.get_one(Invoice, second_id)
        assert second.attempt == 2 and second.status is InvoiceStatus.SENT
        assert second.external_id != first.external_id
    statuses = sorted(inv.status for inv in shop.stripe_invoices(show.id))  # type: ignore[attr-defined]
    assert statuses == ["open", "open", "void"]


def test_a_viewer_cannot_generate_and_other_workspaces_are_invisible(shop: Shop) -> None:
    show = make_show(shop.engine, workspace_id=shop.workspace_id, buyers=1)
    viewer = Actor(operator_id=2, workspace_id=shop.workspace_id, role=Role.VIEWER)
    stranger = Actor(operator_id=3, workspace_id=shop.workspace_id + 1000, role=Role.OWNER)
    with Session(shop.engine) as session:
        with pytest.raises(PermissionDenied):
            invoicing.generate_all(session, actor=viewer, show_id=show.id)
        with pytest.raises(NotFound):
            invoicing.generate_all(session, actor=stranger, show_id=show.id)


def test_without_stripe_generating_says_to_connect_it(shop: Shop) -> None:
    show = make_show(shop.engine, workspace_id=shop.workspace_id, buyers=1)
    with Session(shop.engine) as session:
        session.execute(
            Integration.__table__.update().values(status=IntegrationStatus.INACTIVE)  # type: ignore[attr-defined]
        )
        session.commit()
        with pytest.raises(NotFound, match="connect it under Integrations"):
            invoicing.generate_all(session, actor=shop.owner, show_id=show.id)


def _connect_messenger(shop: Shop, permissions: list[str] | None = None) -> None:
    body: dict[str, object] = {"name": "Lakeside"}
    if permissions is not None:
        body["permissions"] = permissions
    page = httpx.post(f"{shop.sandbox.url}/graph/_sandbox/pages", json=body, timeout=10).json()
    with Session(shop.engine) as session:
        row = Integration(
            workspace_id=shop.workspace_id,
            provider="messenger",
            display_name="Messenger",
            status=IntegrationStatus.ACTIVE,
        )
        session.add(row)
        session.flush()
        credentials.seal(row, {"page_access_token": page["page_access_token"]})
        session.commit()


def _sent_messages(shop: Shop) -> list[dict[str, object]]:
    with shop.sandbox.ctx.store.section("messenger") as state:
        return list(state.get("messages", []))


def test_links_go_by_messenger_when_it_can_reach_the_buyer(shop: Shop) -> None:
    _connect_messenger(shop)
    show = make_show(
        shop.engine, workspace_id=shop.workspace_id, buyers=3, emails=False, psids=True
    )
    _generate(shop, show)
    shop.drain()
    invoices = shop.invoices(show.id)
    assert [i.link_channel for i in invoices] == ["messenger"] * 3
    texts = sorted(str(m["message"]["text"]) for m in _sent_messages(shop))  # type: ignore[index]
    expected = sorted(
        f"Hi {i.buyer_handle}! Here's your checkout for Friday Finds: {i.external_url}"
        for i in invoices
    )
    assert texts == expected
    # "Send link" again sends once more, and each send is recorded.
    with Session(shop.engine) as session:
        said = checkout_links.send_link(session, actor=shop.owner, invoice_id=invoices[0].id)
        session.commit()
    assert said.sent and "Messenger" in said.message
    shop.drain()
    assert len(_sent_messages(shop)) == 4
    with Session(shop.engine) as session:
        sends = checkout_links.sends_of(
            session, workspace_id=shop.workspace_id, invoice_id=invoices[0].id
        )
        assert [(s.channel, s.outcome) for s in sends] == [("messenger", "sent")] * 2


def test_links_fall_back_to_a_manual_send_when_messenger_cannot(shop: Shop) -> None:
    _connect_messenger(shop, permissions=["pages_show_list"])  # no pages_messaging
    show = make_show(shop.engine, workspace_id=shop.workspace_id, buyers=2, emails=False)
    # Buyer 0 wrote to the Page (but the token cannot message); buyer 1 never did.
    _set_psid(shop, show.buyers[0], "9100000001")
    _generate(shop, show)
    shop.drain()
    refused, unreachable = shop.invoices(show.id)
    assert refused.link_channel == unreachable.link_channel == "manual"
    assert _sent_messages(shop) == []
    with Session(shop.engine) as session:
        refused_sends = checkout_links.sends_of(
            session, workspace_id=shop.workspace_id, invoice_id=refused.id
        )
        assert refused_sends[-1].outcome == "manual"
        assert "pages_messaging" in (refused_sends[-1].detail or "")
        said = checkout_links.send_link(session, actor=shop.owner, invoice_id=unreachable.id)
        assert not said.sent
        assert "Copy the link" in said.message and "has not written to your Page" in said.message
        checkout_links.record_copy(session, actor=shop.owner, invoice_id=unreachable.id)
        session.commit()
        outcomes = [
            s.outcome
            for s in session.scalars(
                select(CheckoutLinkSend).where(CheckoutLinkSend.invoice_id == unreachable.id)
            )
        ]
    assert outcomes == ["manual", "manual", "copied"]


def _set_psid(shop: Shop, platform_user_id: str, psid: str) -> None:
    with Session(shop.engine) as session:
        buyer = session.scalars(
            select(Buyer).where(Buyer.platform_user_id == platform_user_id)
        ).one()
        buyer.messenger_psid = psid
        session.commit()


def _deliver(shop: Shop, event_type: str, obj: dict[str, object], n: int) -> None:
    with Session(shop.engine) as session:
        event = InboundEvent(
            provider="stripe",
            external_id=f"evt_{event_type}_{n}",
            event_type=event_type,
            workspace_id=shop.workspace_id,
            payload={
                "id": f"evt_{n}",
                "type": event_type,
                "created": 1_700_000_000 + n,
                "data": {"object": obj},
            },
            status="pending",
            attempts=0,
        )
        session.add(event)
        session.flush()
        handler = inbox.handler_for("stripe", event_type)
        assert handler is not None
        handler(session, event)
        session.commit()


def test_webhooks_in_any_order_end_paid_and_a_late_one_changes_nothing(shop: Shop) -> None:
    show = make_show(shop.engine, workspace_id=shop.workspace_id, buyers=1)
    _generate(shop, show)
    shop.drain()
    invoice = shop.invoices(show.id)[0]
    obj = {
        "id": invoice.external_id,
        "object": "invoice",
        "amount_paid": invoice.amount_cents,
        "currency": "usd",
        "status_transitions": {"paid_at": 1_700_000_100},
        "metadata": {},
    }
    _deliver(shop, "invoice.paid", obj, 1)
    _deliver(shop, "invoice.finalized", obj, 2)
    _deliver(shop, "invoice.sent", obj, 3)
    after = shop.invoices(show.id)[0]
    assert after.status is InvoiceStatus.PAID and after.paid_at is not None


def test_an_event_that_overtakes_the_job_finds_the_invoice_by_its_metadata(shop: Shop) -> None:
    show = make_show(shop.engine, workspace_id=shop.workspace_id, buyers=1)
    _generate(shop, show)
    invoice = shop.invoices(show.id)[0]  # queued: Stripe's id not stored yet
    obj = {
        "id": "in_overtaking",
        "object": "invoice",
        "amount_paid": 500,
        "currency": "usd",
        "metadata": {"hub_invoice_id": str(invoice.id)},
        "status_transitions": {},
    }
    _deliver(shop, "invoice.paid", obj, 1)
    after = shop.invoices(show.id)[0]
    assert after.status is InvoiceStatus.PAID and after.external_id == "in_overtaking"


def test_connecting_stripe_registers_our_sidecar_as_its_webhook_endpoint(shop: Shop) -> None:
    with Session(shop.engine) as session:
        integration = session.scalars(
            select(Integration).where(Integration.provider == "stripe")
        ).one()
        assert stripe_webhook_setup.request_if_needed(session, integration) is not None
        integration_id = integration.id
        session.commit()
    shop.drain()
    with Session(shop.engine) as session:
        integration = session.get_one(Integration, integration_id)
        secrets = credentials.unseal(integration)
        # Registered once: asking again for the same connection adds nothing.
        assert stripe_webhook_setup.request_if_needed(session, integration) is None
    endpoints = client(shop.sandbox.url, shop.key).v1.webhook_endpoints.list().data
    ours = [e for e in endpoints if e.url.endswith("/webhooks/stripe/shop")]
    assert len(ours) == 1 and ours[0].id == secrets["webhook_endpoint_id"]
    assert "invoice.paid" in ours[0].enabled_events
    assert str(secrets["webhook_signing_secret"]).startswith("whsec_")


def test_a_price_changed_after_invoicing_regenerates_unpaid_invoices_never_paid_ones(
    shop: Shop,
) -> None:
    # b0000 claims items 1 (x2) and 2, b0001 items 2 and 3, b0002 items 3 and 4.
    show = make_show(
        shop.engine, workspace_id=shop.workspace_id, buyers=3, claims_per_buyer=2, items=4
    )
    item_2 = show.item_ids[1]
    assert _generate(shop, show) == 3
    with Session(shop.engine) as session:
        # Not in Stripe yet: the jobs read the prices when they run, so nothing to offer.
        early = invoicing.set_item_price(session, actor=shop.owner, item_id=item_2, price="12.50")
        session.commit()
    assert early.price == "$12.50" and not early.impact.any
    shop.drain()
    b0, b1, b2 = shop.invoices(show.id)
    assert [i.amount_cents for i in (b0, b1, b2)] == [2 * 500 + 1250, 1250 + 1500, 1500 + 2000]

    # b0001 pays.
    client(shop.sandbox.url, shop.key).v1.invoices.pay(
        b1.external_id or "", {"paid_out_of_band": True}
    )
    paid = {"id": b1.external_id, "object": "invoice", "amount_paid": b1.amount_cents}
    _deliver(shop, "invoice.paid", {**paid, "currency": "usd", "metadata": {}}, 1)

    with Session(shop.engine) as session:
        change = invoicing.set_item_price(session, actor=shop.owner, item_id=item_2, price="14")
        session.commit()
    # Only invoices whose lines have item 2: b0000's is offered, b0001's paid one never is.
    assert (change.previous_cents, change.price_cents) == (1250, 1400)
    assert change.impact.regenerate == [b0.id] and change.impact.handles == ["b0000"]
    assert change.impact.paid == ["b0001"]

    with Session(shop.engine) as session:
        with pytest.raises(PermissionDenied):
            invoicing.regenerate_for_item(
                session,
                actor=Actor(operator_id=2, workspace_id=shop.workspace_id, role=Role.VIEWER),
                item_id=item_2,
            )
        result = invoicing.regenerate_for_item(session, actor=shop.owner, item_id=item_2)
        session.commit()
    assert result.regenerating == 1
    assert result.message == (
        "Regenerating 1 invoice: each is voided in Stripe and made again at the new price. "
        "1 paid invoice is never regenerated (@b0001): refund or charge the difference in Stripe."
    )
    shop.drain()
    assert shop.job_errors() == []
    after = [(i.buyer_handle, i.attempt, i.status, i.amount_cents) for i in shop.invoices(show.id)]
    assert after == [
        ("b0000", 1, InvoiceStatus.VOID, 2 * 500 + 1250),
        ("b0001", 1, InvoiceStatus.PAID, 1250 + 1500),
        ("b0002", 1, InvoiceStatus.SENT, 1500 + 2000),
        ("b0000", 2, InvoiceStatus.SENT, 2 * 500 + 1400),
    ]
    statuses = sorted(inv.status for inv in shop.stripe_invoices(show.id))  # type: ignore[attr-defined]
    assert statuses == ["open", "open", "paid", "void"]

    # Asked again, nothing is left to regenerate (and nothing is voided twice).
    with Session(shop.engine) as session:
        again = invoicing.regenerate_for_item(session, actor=shop.owner, item_id=item_2)
        session.commit()
    assert again.regenerating == 0 and again.message.startswith("No invoice needed regenerating.")
    shop.drain()
    assert len(shop.invoices(show.id)) == 4


def test_send_link_for_a_buyer_stripe_emailed_says_so_and_keeps_the_email(shop: Shop) -> None:
    """Issue 11, point 5: Messenger is not connected, Stripe emailed the buyer: "Send link"
    says that truthfully, is not a success, and the row keeps "emailed by Stripe"."""
    show = make_show(shop.engine, workspace_id=shop.workspace_id, buyers=2, emails=True)
    _generate(shop, show)
    shop.drain()
    emailed = shop.invoices(show.id)[0]
    assert emailed.link_channel == "email"
    with Session(shop.engine) as session:
        said = checkout_links.send_link(session, actor=shop.owner, invoice_id=emailed.id)
        session.commit()
    assert not said.sent
    assert f"Stripe has already emailed the link to @{emailed.buyer_handle}" in said.message
    assert "Messenger is not connected" in said.message and "copy the link" in said.message
    [again] = [i for i in shop.invoices(show.id) if i.id == emailed.id]
    assert again.link_channel == "email"
    with Session(shop.engine) as session:
        sends = checkout_links.sends_of(
            session, workspace_id=shop.workspace_id, invoice_id=emailed.id
        )
        assert [(s.channel, s.outcome) for s in sends] == [
            ("email", "sent"),
            ("messenger", "not_sent"),
        ]
