"""The Stripe emulator, driven through the official stripe SDK over loopback HTTP."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest
import stripe

import backend.sandbox.stripe as stripe_emulator
from backend.sandbox.stripe import core
from tests.sandbox.conftest import MakeSandbox, RunningSandbox
from tests.sandbox.stripe_support import (
    client,
    listen,
    new_account,
    verified_events,
    wait_for_types,
)
from tests.support.servers import WebhookReceiver


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[stripe_emulator])


@pytest.fixture
def account(sandbox: RunningSandbox) -> dict[str, str]:
    return new_account(sandbox.url, name="Test Boutique")


@pytest.fixture
def sdk(sandbox: RunningSandbox, account: dict[str, str]) -> stripe.StripeClient:
    return client(sandbox.url, account["secret_key"])


def _invoice_for(
    sdk: stripe.StripeClient,
    email: str | None = "buyer@example.com",
    amounts: tuple[int, ...] = (1500, 2500),
) -> stripe.Invoice:
    customer = sdk.v1.customers.create(
        {"email": email, "metadata": {"platform_user_id": "fb_1"}}
        if email
        else {"metadata": {"platform_user_id": "fb_1"}}
    )
    invoice = sdk.v1.invoices.create(
        {
            "customer": customer.id,
            "collection_method": "send_invoice",
            "days_until_due": 7,
            "metadata": {"show_id": "42"},
            "description": "Your claims from Sunday Live",
        }
    )
    for number, amount in enumerate(amounts, start=1):
        sdk.v1.invoice_items.create(
            {
                "customer": customer.id,
                "invoice": invoice.id,
                "amount": amount,
                "currency": "usd",
                "description": f"#{number} Item",
            }
        )
    return invoice


# -- authentication -------------------------------------------------------------------------


def test_unknown_key_is_401_in_stripes_shape(sandbox: RunningSandbox) -> None:
    with pytest.raises(stripe.AuthenticationError) as caught:
        client(sandbox.url, "sk_test_51NotARealKey000000000000").v1.customers.list()
    assert caught.value.http_status == 401
    assert "Invalid API Key provided" in str(caught.value.user_message)
    body = caught.value.json_body or {}
    assert set(body["error"]) >= {"type", "code", "message", "param"}


def test_publishable_key_is_refused_with_an_explanation(
    sandbox: RunningSandbox, account: dict[str, str]
) -> None:
    with pytest.raises(stripe.AuthenticationError) as caught:
        client(sandbox.url, account["publishable_key"]).v1.customers.list()
    assert "publishable API key" in str(caught.value.user_message)
    assert (caught.value.json_body or {})["error"]["code"] == "secret_key_required"


def test_restricted_key_without_permission_is_403(
    sandbox: RunningSandbox, account: dict[str, str]
) -> None:
    restricted = client(sandbox.url, account["restricted_key"])
    assert restricted.v1.customers.list().object == "list"  # customers: read is granted
    with pytest.raises(stripe.PermissionError) as caught:
        restricted.v1.invoices.create({"customer": "cus_x"})
    assert caught.value.http_status == 403
    assert "'rak_invoice_write' permission" in str(caught.value.user_message)


def test_account_retrieve_serves_as_test_connection(sdk: stripe.StripeClient) -> None:
    account = sdk.v1.accounts.retrieve_current()
    assert account.object == "account"
    assert account.business_profile is not None
    assert account.business_profile.name == "Test Boutique"


def test_unknown_parameter_is_refused_like_stripe(sdk: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.customers.create({"email": "a@b.example", "favourite_colour": "blue"})  # type: ignore[typeddict-unknown-key]
    assert caught.value.code == "parameter_unknown"
    assert caught.value.param == "favourite_colour"


# -- the invoice flow -----------------------------------------------------------------------


def test_invoice_flow_produces_each_signed_event_once(
    sandbox: RunningSandbox, sdk: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    secret = listen(sdk, receiver)
    invoice = _invoice_for(sdk)
    draft = sdk.v1.invoices.retrieve(invoice.id)
    assert (draft.status, draft.amount_due, len(draft.lines.data)) == ("draft", 4000, 2)
    finalized = sdk.v1.invoices.finalize_invoice(invoice.id)
    assert finalized.status == "open" and finalized.number and finalized.hosted_invoice_url
    assert finalized.due_date is not None
    sent = sdk.v1.invoices.send_invoice(invoice.id)
    assert sent.status == "open"

    page = httpx.get(finalized.hosted_invoice_url)
    assert page.status_code == 200 and "40.00 USD" in page.text and 'data-testid="pay"' in page.text
    paid = httpx.post(finalized.hosted_invoice_url + "/pay", follow_redirects=True)
    assert "paid" in paid.text
    after = sdk.v1.invoices.retrieve(invoice.id)
    assert (after.status, after.amount_paid, after.amount_remaining) == ("paid", 4000, 0)

    wanted = [
        "invoice.created",
        "invoice.finalized",
        "invoice.sent",
        "invoice.paid",
        "payment_intent.succeeded",
    ]
    events = wait_for_types(receiver, secret, wanted)
    # Stripe does not promise an order; each event arrives once (no duplicate switch here).
    assert sorted(e.type for e in events if e.type in wanted) == sorted(wanted)
    paid_event = next(e for e in events if e.type == "invoice.paid")
    assert paid_event.data.object["id"] == invoice.id
    assert paid_event.data.object["metadata"]["show_id"] == "42"


def test_a_failing_card_leaves_the_invoice_open_and_says_so(
    sdk: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    secret = listen(sdk, receiver)
    invoice = sdk.v1.invoices.finalize_invoice(_invoice_for(sdk).id)
    assert invoice.hosted_invoice_url
    page = httpx.post(invoice.hosted_invoice_url + "/fail", follow_redirects=True)
    assert "declined" in page.text
    assert sdk.v1.invoices.retrieve(invoice.id).status == "open"
    wait_for_types(receiver, secret, ["invoice.payment_failed", "payment_intent.payment_failed"])
    with pytest.raises(stripe.CardError) as caught:
        sdk.v1.invoices.pay(invoice.id, {"payment_method": "pm_card_chargeDeclined"})
    assert caught.value.http_status == 402 and caught.value.code == "card_declined"
    assert sdk.v1.invoices.pay(invoice.id, {"payment_method": "pm_card_visa"}).status == "paid"


def test_void_and_uncollectible(sdk: stripe.StripeClient, receiver: WebhookReceiver) -> None:
    secret = listen(sdk, receiver)
    first = sdk.v1.invoices.finalize_invoice(_invoice_for(sdk).id)
    second = sdk.v1.invoices.finalize_invoice(_invoice_for(sdk).id)
    assert sdk.v1.invoices.void_invoice(first.id).status == "void"
    assert sdk.v1.invoices.mark_uncollectible(second.id).status == "uncollectible"
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.invoices.void_invoice(_invoice_for(sdk).id)  # a draft cannot be voided
    wait_for_types(receiver, secret, ["invoice.voided", "invoice.marked_uncollectible"])


def test_add_lines_and_list_filters(sdk: stripe.StripeClient) -> None:
    invoice = _invoice_for(sdk, amounts=())
    product = sdk.v1.products.create({"name": "Silk scarf"})
    sdk.v1.invoices.add_lines(
        invoice.id,
        {
            "lines": [
                {
                    "price_data": {"currency": "usd", "product": product.id, "unit_amount": 1200},
                    "quantity": 2,
                },
                {"amount": 300, "description": "Shipping"},
            ]
        },
    )
    refreshed = sdk.v1.invoices.retrieve(invoice.id)
    assert refreshed.amount_due == 2700
    other = _invoice_for(sdk, email="other@example.com")
    sdk.v1.invoices.finalize_invoice(other.id)
    drafts = sdk.v1.invoices.list({"customer": refreshed.customer, "status": "draft"})  # type: ignore[typeddict-item]
    assert [i.id for i in drafts.data] == [invoice.id]
    found = sdk.v1.invoices.search({"query": "metadata['show_id']:'42' AND status:'open'"})
    assert [i.id for i in found.data] == [other.id]


def test_customers_search_by_metadata_and_list_by_email(sdk: stripe.StripeClient) -> None:
    alice = sdk.v1.customers.create(
        {"email": "alice@example.com", "metadata": {"platform_user_id": "fb_9"}}
    )
    sdk.v1.customers.create({"email": "bob@example.com", "metadata": {"platform_user_id": "fb_8"}})
    found = sdk.v1.customers.search({"query": "metadata['platform_user_id']:'fb_9'"})
    assert [c.id for c in found.data] == [alice.id]
    by_email = sdk.v1.customers.list({"email": "ALICE@example.com"})
    assert [c.id for c in by_email.data] == [alice.id]
    updated = sdk.v1.customers.update(alice.id, {"name": "Alice", "metadata": {"vip": "yes"}})
    assert updated.name == "Alice"
    assert updated.metadata.to_dict() == {"platform_user_id": "fb_9", "vip": "yes"}


def test_search_pages_through_every_match_with_next_page(sdk: stripe.StripeClient) -> None:
    made = [sdk.v1.customers.create({"metadata": {"batch": "b1"}}).id for _ in range(5)]
    sdk.v1.customers.create({"metadata": {"batch": "other"}})
    seen: list[str] = []
    params: dict[str, object] = {"query": "metadata['batch']:'b1'", "limit": 2}
    pages = 0
    while True:
        found = sdk.v1.customers.search(params)  # type: ignore[arg-type]
        pages += 1
        seen += [c.id for c in found.data]
        if not found.has_more:
            assert found.next_page is None
            break
        params["page"] = found.next_page
    assert pages == 3 and sorted(seen) == sorted(made) and len(seen) == len(set(seen))
    with pytest.raises(stripe.InvalidRequestError, match="Invalid page"):
        sdk.v1.customers.search({"query": "metadata['batch']:'b1'", "page": "bogus!"})


# -- idempotency ----------------------------------------------------------------------------


def test_same_idempotency_key_returns_the_first_response(sdk: stripe.StripeClient) -> None:
    options = {"idempotency_key": "invoice-show-42-buyer-fb_1"}
    first = sdk.v1.customers.create({"email": "x@example.com"}, options)  # type: ignore[arg-type]
    again = sdk.v1.customers.create({"email": "x@example.com"}, options)  # type: ignore[arg-type]
    assert first.id == again.id
    assert len(sdk.v1.customers.list().data) == 1
    assert again.last_response is not None
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"


def test_same_key_with_other_parameters_is_an_idempotency_error(sdk: stripe.StripeClient) -> None:
    options = {"idempotency_key": "k-1"}
    sdk.v1.customers.create({"email": "x@example.com"}, options)  # type: ignore[arg-type]
    with pytest.raises(stripe.IdempotencyError):
        sdk.v1.customers.create({"email": "y@example.com"}, options)  # type: ignore[arg-type]


def test_a_failure_is_replayed_too(sdk: stripe.StripeClient) -> None:
    options = {"idempotency_key": "k-fail"}
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            sdk.v1.invoices.create({"customer": "cus_missing"}, options)  # type: ignore[arg-type]
        assert caught.value.code == "resource_missing"
    assert len(sdk.v1.invoices.list().data) == 0


# -- checkout and subscriptions -------------------------------------------------------------


def test_subscription_checkout_creates_a_subscription_and_its_events(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    platform = client(sandbox.url, core.PLATFORM_SECRET_KEY)
    secret = listen(platform, receiver)
    price = platform.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": 2900,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Pro plan"},
            "lookup_key": "pro_monthly",
        }
    )
    session = platform.v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "https://hub.example/plan?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://hub.example/plan?cancelled=1",
            "client_reference_id": "workspace-7",
            "customer_email": "owner@studio.example",
            "subscription_data": {"metadata": {"workspace_id": "7"}},
        }
    )
    assert session.url and session.status == "open"
    done = httpx.post(session.url + "/pay")
    assert done.status_code == 303
    assert done.headers["location"] == f"https://hub.example/plan?session={session.id}"
    completed = platform.v1.checkout.sessions.retrieve(session.id)
    assert (completed.status, completed.payment_status) == ("complete", "paid")
    subscription = platform.v1.subscriptions.retrieve(str(completed.subscription))
    assert subscription.status == "active"
    assert subscription.metadata.to_dict() == {"workspace_id": "7"}
    assert subscription["items"].data[0].price.lookup_key == "pro_monthly"

    events = wait_for_types(
        receiver,
        secret,
        ["customer.subscription.created", "checkout.session.completed", "invoice.paid"],
    )
    done_event = next(e for e in events if e.type == "checkout.session.completed")
    assert done_event.data.object["client_reference_id"] == "workspace-7"

    platform.v1.subscriptions.update(subscription.id, {"cancel_at_period_end": True})
    platform.v1.subscriptions.cancel(subscription.id)
    wait_for_types(
        receiver, secret, ["customer.subscription.updated", "customer.subscription.deleted"]
    )
    assert platform.v1.subscriptions.retrieve(subscription.id).status == "canceled"


def test_payment_checkout_cancel_and_failed_card(
    sandbox: RunningSandbox, sdk: stripe.StripeClient
) -> None:
    session = sdk.v1.checkout.sessions.create(
        {
            "mode": "payment",
            "success_url": "https://shop.example/ok",
            "cancel_url": "https://shop.example/cancel",
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 4500,
                        "product_data": {"name": "Opal ring"},
                    },
                    "quantity": 1,
                }
            ],
        }
    )
    assert session.url
    assert "Opal ring" in httpx.get(session.url).text
    cancel = httpx.post(session.url + "/cancel")
    assert cancel.headers["location"] == "https://shop.example/cancel"
    failed = httpx.post(session.url + "/fail", follow_redirects=True)
    assert "declined" in failed.text
    assert sdk.v1.checkout.sessions.retrieve(session.id).status == "open"
    paid = httpx.post(session.url + "/pay")
    assert paid.headers["location"] == "https://shop.example/ok"
    done = sdk.v1.checkout.sessions.retrieve(session.id)
    assert done.payment_intent is not None
    intent = sdk.v1.payment_intents.retrieve(str(done.payment_intent))
    assert (intent.status, intent.amount_received) == ("succeeded", 4500)


def test_recurring_price_in_payment_mode_is_refused(sdk: stripe.StripeClient) -> None:
    price = sdk.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "month"},
            "product_data": {"name": "x"},
        }
    )
    with pytest.raises(stripe.InvalidRequestError, match="recurring price"):
        sdk.v1.checkout.sessions.create(
            {
                "mode": "payment",
                "success_url": "https://x.example",
                "line_items": [{"price": price.id, "quantity": 1}],
            }
        )


# -- payments, refunds, disputes ------------------------------------------------------------


def test_payment_intent_refund_and_dispute_events(
    sandbox: RunningSandbox, sdk: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    secret = listen(sdk, receiver)
    intent = sdk.v1.payment_intents.create(
        {
            "amount": 5000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "metadata": {"contract_id": "3", "kind": "deposit"},
        }
    )
    assert intent.status == "succeeded" and intent.latest_charge
    refund = sdk.v1.refunds.create({"payment_intent": intent.id, "amount": 1000})
    assert refund.status == "succeeded"
    charge = sdk.v1.charges.retrieve(str(intent.latest_charge))
    assert (charge.amount_refunded, charge.refunded) == (1000, False)
    opened = httpx.post(f"{sandbox.url}/stripe/_sandbox/disputes", json={"charge": charge.id})
    assert opened.status_code == 200 and opened.json()["object"] == "dispute"
    events = wait_for_types(
        receiver, secret, ["payment_intent.succeeded", "charge.refunded", "charge.dispute.created"]
    )
    refunded = next(e for e in events if e.type == "charge.refunded")
    assert refunded.data.object["amount_refunded"] == 1000
    declined = sdk.v1.payment_intents.create({"amount": 900, "currency": "usd"})
    with pytest.raises(stripe.CardError):
        sdk.v1.payment_intents.confirm(declined.id, {"payment_method": "pm_card_chargeDeclined"})
    wait_for_types(receiver, secret, ["payment_intent.payment_failed"])


# -- Connect OAuth --------------------------------------------------------------------------


def test_connect_oauth_grants_and_revokes_access(sandbox: RunningSandbox) -> None:
    platform = client(sandbox.url, core.PLATFORM_SECRET_KEY, client_id=core.PLATFORM_CLIENT_ID)
    url = platform.oauth.authorize_url(
        {
            "scope": "read_write",
            "state": "signed-state",
            "redirect_uri": "https://hub.example/oauth/stripe",
        }
    )
    page = httpx.get(url)
    assert page.status_code == 200 and "Connect to" in page.text
    form = {
        "client_id": core.PLATFORM_CLIENT_ID,
        "scope": "read_write",
        "state": "signed-state",
        "redirect_uri": "https://hub.example/oauth/stripe",
        "response_type": "code",
        "decision": "allow",
    }
    back = httpx.post(f"{sandbox.url}/stripe/connect/oauth/authorize/decision", data=form)
    location = httpx.URL(back.headers["location"])
    assert location.params["state"] == "signed-state"
    token = platform.oauth.token(
        {"grant_type": "authorization_code", "code": location.params["code"]}
    )
    connected = client(sandbox.url, str(token.access_token))
    assert connected.v1.accounts.retrieve_current().id == token.stripe_user_id
    with pytest.raises(stripe.oauth_error.InvalidGrantError):
        platform.oauth.token({"grant_type": "authorization_code", "code": location.params["code"]})
    platform.oauth.deauthorize({"stripe_user_id": str(token.stripe_user_id)})
    with pytest.raises(stripe.AuthenticationError):
        connected.v1.customers.list()
    denied = httpx.post(
        f"{sandbox.url}/stripe/connect/oauth/authorize/decision", data={**form, "decision": "deny"}
    )
    assert httpx.URL(denied.headers["location"]).params["error"] == "access_denied"


# -- switches and delivery ------------------------------------------------------------------


def test_rate_limit_answers_429_rate_limit(
    sandbox: RunningSandbox, sdk: stripe.StripeClient
) -> None:
    sandbox.switch(stripe={"rate_limit": 25})
    outcomes: Counter[str] = Counter()
    for _ in range(40):
        try:
            sdk.v1.customers.list()
            outcomes["ok"] += 1
        except stripe.RateLimitError as exc:
            assert exc.http_status == 429
            assert (exc.json_body or {})["error"]["code"] == "rate_limit"
            outcomes["limited"] += 1
    assert outcomes["ok"] >= 25 and outcomes["limited"] >= 1
    sandbox.switch(stripe={"rate_limit": None})
    time.sleep(0.1)
    assert sdk.v1.customers.list().object == "list"


def test_rate_limit_counts_per_account_whichever_key(sandbox: RunningSandbox) -> None:
    """Issue 13, item 2: like Stripe, the limit is an account's: two keys of one account share
    it, and another account's requests never use it up."""
    first = new_account(sandbox.url, restricted_permissions={"customers": "read"})
    other = client(sandbox.url, new_account(sandbox.url)["secret_key"])
    secret, restricted = (
        client(sandbox.url, first["secret_key"]),
        client(sandbox.url, first["restricted_key"]),
    )
    sandbox.switch(stripe={"rate_limit": 5})
    try:
        for _ in range(5):
            secret.v1.customers.list()
        with pytest.raises(stripe.RateLimitError):
            restricted.v1.customers.list()  # the same account's bucket, emptied by the other key
        assert other.v1.customers.list().object == "list"  # another account: its own
    finally:
        sandbox.switch(stripe={"rate_limit": None})


def test_requests_answered_are_counted_by_status(
    sandbox: RunningSandbox, sdk: stripe.StripeClient
) -> None:
    httpx.delete(f"{sandbox.url}/_sandbox/requests").raise_for_status()
    sandbox.switch(stripe={"rate_limit": 5})
    limited = 0
    for _ in range(12):
        try:
            sdk.v1.customers.list()
        except stripe.RateLimitError:
            limited += 1
    sandbox.switch(stripe={"rate_limit": None})
    # The sandbox's own helpers are not API requests: not counted.
    new_account(sandbox.url)
    counted = httpx.get(f"{sandbox.url}/_sandbox/requests").json()["stripe"]
    assert limited >= 1
    assert counted["requests"] == 12
    assert counted["rate_limited"] == limited
    assert counted["by_status"] == {"200": 12 - limited, "429": limited}
    assert httpx.delete(f"{sandbox.url}/_sandbox/requests").json() == {}


def test_a_request_held_by_the_latency_switch_is_counted_in_flight(
    sandbox: RunningSandbox, sdk: stripe.StripeClient
) -> None:
    """What a test waits for to know the product's call is out and waiting."""
    sandbox.switch(stripe={"latency_seconds": 2})
    try:
        worker = threading.Thread(target=sdk.v1.customers.list)
        worker.start()
        while (
            httpx.get(f"{sandbox.url}/_sandbox/requests").json().get("stripe", {}).get("in_flight")
            != 1
        ):
            assert worker.is_alive(), "the request was answered before it was seen in flight"
            worker.join(0.05)
        worker.join()
        assert httpx.get(f"{sandbox.url}/_sandbox/requests").json()["stripe"]["in_flight"] == 0
    finally:
        sandbox.switch(stripe={"latency_seconds": 0})


def test_latency_switch_delays_api_answers_only(
    sandbox: RunningSandbox, sdk: stripe.StripeClient
) -> None:
    sandbox.switch(stripe={"latency_seconds": 0.3})
    started = time.monotonic()
    sdk.v1.customers.list()
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    new_account(sandbox.url)  # the sandbox's own helpers answer at once
    assert time.monotonic() - started < 0.3
    sandbox.switch(stripe={"latency_seconds": 0})
    started = time.monotonic()
    sdk.v1.customers.list()
    assert time.monotonic() - started < 0.3


def test_outage_errors_and_timeouts(sandbox: RunningSandbox, account: dict[str, str]) -> None:
    sdk = client(sandbox.url, account["secret_key"])
    sandbox.switch(stripe={"outage": "errors"})
    with pytest.raises(stripe.APIError) as caught:
        sdk.v1.customers.list()
    assert caught.value.http_status == 500
    sandbox.switch(stripe={"outage": "timeouts", "hang_seconds": 3})
    impatient = client(
        sandbox.url,
        account["secret_key"],
        http_client=stripe.HTTPXClient(timeout=0.5, allow_sync_methods=True),
    )
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.customers.list()
    sandbox.switch(stripe={"outage": "none"})
    assert sdk.v1.customers.list().object == "list"


def test_failed_deliveries_are_retried_with_backoff(
    sandbox: RunningSandbox, sdk: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    secret = listen(sdk, receiver)
    receiver.statuses = [500, 503]
    sdk.v1.customers.create({"email": "retry@example.com"})
    receiver.wait_for(3)
    events = verified_events(receiver, secret)
    assert [e.type for e in events] == ["customer.created"] * 3
    log = httpx.get(f"{sandbox.url}/_sandbox/deliveries").json()
    assert log[-1]["attempts"] == 3 and log[-1]["delivered"] is True


def test_duplicate_and_reorder_switches(
    sandbox: RunningSandbox, sdk: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    secret = listen(sdk, receiver)
    sandbox.switch(delivery={"duplicate": True, "reorder": True})
    created = [sdk.v1.customers.create({"email": f"c{i}@example.com"}).id for i in range(12)]
    receiver.wait_for(24)
    events = verified_events(receiver, secret)
    ids = [e.data.object["id"] for e in events]
    assert Counter(ids) == Counter({c: 2 for c in created})
    first_seen = list(dict.fromkeys(ids))
    assert first_seen != created  # shuffled: 12! orders, one of them the original


# -- fidelity to Stripe's published objects -------------------------------------------------


def test_every_event_the_sandbox_signs_is_verified_by_construct_event(
    sdk: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    secret = listen(sdk, receiver)
    sdk.v1.customers.create({"email": "sig@example.com"})
    receiver.wait_for(1)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            receiver.received[0].body.decode() + " ",
            receiver.received[0].headers["stripe-signature"],
            secret,
        )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            receiver.received[0].body.decode(),
            receiver.received[0].headers["stripe-signature"],
            "whsec_wrong",
        )


def test_an_idempotency_key_is_forgotten_after_24_hours_as_stripe_does(
    sandbox: RunningSandbox, sdk: stripe.StripeClient
) -> None:
    first = sdk.v1.customers.create({"name": "a"}, {"idempotency_key": "k-1"})
    assert sdk.v1.customers.create({"name": "a"}, {"idempotency_key": "k-1"}).id == first.id
    sandbox.switch(clock={"offset_seconds": 23 * 3600})
    assert sdk.v1.customers.create({"name": "a"}, {"idempotency_key": "k-1"}).id == first.id
    sandbox.switch(clock={"offset_seconds": 25 * 3600})
    assert sdk.v1.customers.create({"name": "a"}, {"idempotency_key": "k-1"}).id != first.id
    assert httpx.get(f"{sandbox.url}/_sandbox/switches").json()["clock"] == {
        "offset_seconds": 25 * 3600
    }


def test_search_trails_writes_when_told_to_and_lists_do_not(
    sandbox: RunningSandbox, sdk: stripe.StripeClient
) -> None:
    made = sdk.v1.customers.create({"name": "a", "metadata": {"platform_user_id": "u1"}})
    query = {"query": "metadata['platform_user_id']:'u1'"}
    sandbox.switch(stripe={"search_lag_seconds": 3600})
    assert sdk.v1.customers.search(query).data == []
    assert [c.id for c in sdk.v1.customers.list().data] == [made.id]
    sandbox.switch(stripe={"search_lag_seconds": 0})
    assert [c.id for c in sdk.v1.customers.search(query).data] == [made.id]


def test_lists_filter_by_creation_time(sdk: stripe.StripeClient) -> None:
    made = sdk.v1.customers.create({"name": "a"})
    assert [c.id for c in sdk.v1.customers.list({"created": {"gte": made.created}}).data] == [
        made.id
    ]
    assert sdk.v1.customers.list({"created": {"gt": made.created}}).data == []
    assert [c.id for c in sdk.v1.customers.list({"created": made.created}).data] == [made.id]
