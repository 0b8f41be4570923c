"""Every call the product makes to Stripe, through the official SDK, and nothing else; Stripe's
exceptions are translated into provider-neutral outcomes here, in one place.

The adapter never touches the database or the settings: the service hands it the key, the base
URLs (the sandbox's or Stripe's) and a ``throttle`` to call before each request.

Tested in tests/integrations/test_stripe.py (through the official stripe SDK, against the sandbox).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import stripe

from backend.integrations.deadline import Client, within
from backend.integrations.errors import (
    ProviderAuthFailed,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)

Throttle = Callable[[], None]


def _no_throttle() -> None:
    return None


def search_string(value: str) -> str:
    """``value`` as a quoted string of Stripe's search query language: a quote or backslash in
    it (an id from an imported file) is escaped, so it cannot end the string and add clauses
    of its own ("x' OR metadata['platform_user_id']:'victim")."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class StripeEndpoints:
    api: str | None = None  # None: Stripe's own
    connect: str | None = None

    @classmethod
    def sandbox(cls, base_url: str) -> StripeEndpoints:
        return cls(api=f"{base_url}/stripe", connect=f"{base_url}/stripe/connect")


@contextmanager
def translated_errors(timeout: float | None = None) -> Iterator[None]:
    """Stripe's exceptions as provider-neutral outcomes, with Stripe's own message kept."""
    try:
        yield
    except stripe.RateLimitError as exc:
        headers = exc.headers or {}
        retry_after = headers.get("Retry-After") or headers.get("retry-after")
        raise ProviderRateLimited(
            f"Stripe rate limit: {exc.user_message}",
            retry_after=float(retry_after) if retry_after else None,
        ) from None
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        raise ProviderAuthFailed(
            f"Stripe refused the key ({exc.http_status}): {exc.user_message}",
            status=exc.http_status,
        ) from None
    except stripe.IdempotencyError as exc:
        raise ProviderRejected(
            f"Stripe idempotency conflict: {exc.user_message}", status=exc.http_status
        ) from None
    except stripe.APIConnectionError as exc:
        if isinstance(exc.__cause__, httpx.TimeoutException):
            within = f" within {timeout:g} s" if timeout else ""
            raise ProviderTimeout(f"Stripe did not answer{within}", seconds=timeout) from None
        raise ProviderUnavailable(f"Stripe could not be reached: {type(exc).__name__}") from None
    except stripe.StripeError as exc:
        status = exc.http_status or 0
        if status >= 500 or status in (0, 409):
            raise ProviderUnavailable(f"Stripe answered {status}: {exc.user_message}") from None
        payload: dict[str, Any] = exc.json_body if isinstance(exc.json_body, dict) else {}
        error = payload.get("error")
        body: dict[str, Any] = error if isinstance(error, dict) else {}
        raise ProviderRejected(
            f"Stripe refused: {exc.user_message}",
            status=status,
            code=body.get("code"),
            param=body.get("param"),
        ) from None


class _HTTPXClient(stripe.HTTPXClient):
    """The SDK's httpx client over connections the running deadline watches
    (backend/integrations/deadline.py)."""

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout=timeout, allow_sync_methods=True)
        if self._client is not None:
            self._client.close()  # the SDK's own, replaced by ours
        verify = ssl.create_default_context(cafile=stripe.ca_bundle_path)
        self._client = Client(verify=verify)


@dataclass(frozen=True)
class WriteProbe:
    """A resource the product writes, as the SDK names it and as Stripe's Dashboard labels
    its permission on a restricted key (Developers → API keys → edit key)."""

    attribute: str  # StripeClient.v1.<attribute>
    label: str


CUSTOMERS = WriteProbe("customers", "Customers")
INVOICES = WriteProbe("invoices", "Invoices")
WEBHOOK_ENDPOINTS = WriteProbe("webhook_endpoints", "Webhook Endpoints")
_PROBE_PARAMETER = "integrations_hub_permission_check"


@dataclass(frozen=True)
class StripeInvoice:
    """What we keep of a Stripe invoice."""

    id: str
    status: str  # draft | open | paid | void | uncollectible
    hosted_invoice_url: str | None
    amount_due: int
    amount_paid: int
    currency: str
    metadata: dict[str, str]

    @classmethod
    def of(cls, invoice: Any) -> StripeInvoice:
        return cls(
            id=str(invoice.id),
            status=str(invoice.status),
            hosted_invoice_url=getattr(invoice, "hosted_invoice_url", None),
            amount_due=int(invoice.amount_due or 0),
            amount_paid=int(invoice.amount_paid or 0),
            currency=str(invoice.currency),
            metadata=(
                {str(k): str(v) for k, v in invoice.metadata.to_dict().items()}
                if invoice.metadata
                else {}
            ),
        )


class StripeAdapter:
    def __init__(
        self,
        api_key: str,
        *,
        endpoints: StripeEndpoints | None = None,
        throttle: Throttle = _no_throttle,
        timeout: float = 30.0,
        log_as: str = "stripe",
    ) -> None:
        # The name its calls have in the call log: "stripe_platform" for the platform's own
        # account, so that its outage is not shown as the workspace's Stripe.
        self._log_as = log_as
        endpoints = endpoints or StripeEndpoints()
        base: dict[str, str] = {}
        if endpoints.api:
            base["api"] = endpoints.api
        if endpoints.connect:
            base["connect"] = endpoints.connect
        self._client = stripe.StripeClient(
            api_key,
            base_addresses=base,  # type: ignore[arg-type]
            # Retries belong to the outbox (backoff, breaker); one attempt per job run here.
            max_network_retries=0,
            http_client=_HTTPXClient(timeout),
        )
        self._throttle = throttle
        self._timeout = timeout

    def _call(self, fn: Callable[[], Any]) -> Any:
        self._throttle()
        # The SDK's timeout is httpx's, per read: the deadline bounds the whole request.
        with within("Stripe", self._timeout, slug=self._log_as), translated_errors(self._timeout):
            return fn()

    def account(self) -> dict[str, Any]:
        """Test connection: who the key belongs to."""
        account = self._call(lambda: self._client.v1.accounts.retrieve_current())
        profile = account.business_profile
        return {
            "id": account.id,
            "name": getattr(profile, "name", None) or account.email,
            "country": account.country,
            "default_currency": account.default_currency,
        }

    def may_write(self, resource: WriteProbe) -> bool:
        """Whether this key may write ``resource``, asked without changing anything: a create
        with a parameter Stripe does not know. Stripe checks a restricted key's permissions
        before the parameters, so 403 means "may not" and 400 (the unknown parameter) "may".
        No idempotency key of ours: Stripe stores no result for a request refused before it
        ran, and this one always is."""
        create = getattr(self._client.v1, resource.attribute).create
        self._throttle()
        with within("Stripe", self._timeout, slug=self._log_as):
            try:
                create({_PROBE_PARAMETER: "1"})
            except stripe.PermissionError:
                return False
            except stripe.InvalidRequestError as exc:
                if exc.http_status == 400:
                    return True
                with translated_errors():
                    raise
            except stripe.StripeError:
                with translated_errors(self._timeout):
                    raise
        # Stripe accepted a parameter it does not know: it may write (whatever it made is
        # unusable to us and harmless).
        return True

    def ensure_customer(
        self, *, platform_user_id: str, email: str | None, name: str, idempotency_key: str
    ) -> str:
        """The buyer's customer: found by our metadata, else created (once, by key)."""
        query = f"metadata['platform_user_id']:{search_string(platform_user_id)}"
        found = self._call(lambda: self._client.v1.customers.search({"query": query}))
        if found.data:
            return str(found.data[0].id)
        if email:
            # Search trails Stripe's writes by about a minute; a list by email does not, so a
            # customer an earlier try made a moment ago is found here rather than made twice.
            listed = self._call(
                lambda: self._client.v1.customers.list({"email": email, "limit": 100})
            )
            for customer in listed.data:
                ours = customer.metadata.to_dict() if customer.metadata else {}
                if ours.get("platform_user_id") == platform_user_id:
                    return str(customer.id)
        params: dict[str, Any] = {"name": name, "metadata": {"platform_user_id": platform_user_id}}
        if email:
            params["email"] = email
        created = self._call(
            lambda: self._client.v1.customers.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        )
        return str(created.id)

    # -- invoices: one per buyer and show, sent for the buyer to pay on Stripe's hosted page ----

    def create_invoice(
        self,
        *,
        customer: str,
        currency: str,
        memo: str,
        days_until_due: int,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> StripeInvoice:
        """A draft invoice the buyer will pay themselves (``send_invoice``), not charged."""
        params: dict[str, Any] = {
            "customer": customer,
            "currency": currency,
            "collection_method": "send_invoice",
            "days_until_due": days_until_due,
            "description": memo,
            "metadata": metadata,
            # We finalize it ourselves once its lines are on; Stripe must not do it earlier.
            "auto_advance": False,
        }
        created = self._call(
            lambda: self._client.v1.invoices.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        )
        return StripeInvoice.of(created)

    def add_invoice_lines(
        self, invoice_id: str, lines: list[dict[str, Any]], *, idempotency_key: str
    ) -> StripeInvoice:
        """All of a draft invoice's lines in one request (each: amount, description, metadata)."""
        updated = self._call(
            lambda: self._client.v1.invoices.add_lines(
                invoice_id,
                {"lines": lines},  # type: ignore[typeddict-item]
                {"idempotency_key": idempotency_key},
            )
        )
        return StripeInvoice.of(updated)

    def finalize_invoice(self, invoice_id: str, *, idempotency_key: str) -> StripeInvoice:
        finalized = self._call(
            lambda: self._client.v1.invoices.finalize_invoice(
                invoice_id, {"auto_advance": False}, {"idempotency_key": idempotency_key}
            )
        )
        return StripeInvoice.of(finalized)

    def send_invoice(self, invoice_id: str, *, idempotency_key: str) -> StripeInvoice:
        """Stripe emails the hosted link to the customer (who must have an email)."""
        sent = self._call(
            lambda: self._client.v1.invoices.send_invoice(
                invoice_id, {}, {"idempotency_key": idempotency_key}
            )
        )
        return StripeInvoice.of(sent)

    def void_invoice(self, invoice_id: str, *, idempotency_key: str) -> StripeInvoice:
        voided = self._call(
            lambda: self._client.v1.invoices.void_invoice(
                invoice_id, {}, {"idempotency_key": idempotency_key}
            )
        )
        return StripeInvoice.of(voided)

    def retrieve_invoice(self, invoice_id: str) -> StripeInvoice:
        return StripeInvoice.of(self._call(lambda: self._client.v1.invoices.retrieve(invoice_id)))

    def find_invoice(
        self, *, key: str, value: str, customer: str, created_since: int
    ) -> StripeInvoice | None:
        """The invoice whose metadata has ``key: value``, if one exists: what an earlier try of
        a job may have made before its answer was lost. First among the customer's invoices made
        since ``created_since`` (Unix seconds), a list, which shows an invoice as soon as it is
        made; then by search, which finds it under any customer but trails writes by about a
        minute."""
        params: dict[str, Any] = {
            "customer": customer,
            "created": {"gte": created_since},
            "limit": 100,
        }
        while True:
            page = self._call(functools.partial(self._client.v1.invoices.list, dict(params)))  # type: ignore[arg-type]
            for invoice in map(StripeInvoice.of, page.data):
                if invoice.metadata.get(key) == value:
                    return invoice
            if not page.has_more or not page.data:
                break
            params["starting_after"] = page.data[-1].id
        found = self.invoices_with_metadata(key, value)
        return found[0] if found else None

    def invoices_with_metadata(self, key: str, value: str) -> list[StripeInvoice]:
        """Every invoice whose metadata has ``key: value`` (all pages of Stripe's search)."""
        query = f"metadata['{key}']:{search_string(value)}"
        found: list[StripeInvoice] = []
        page: str | None = None
        while True:
            params: dict[str, Any] = {"query": query, "limit": 100}
            if page:
                params["page"] = page
            result = self._call(functools.partial(self._client.v1.invoices.search, params))  # type: ignore[arg-type]
            found.extend(StripeInvoice.of(invoice) for invoice in result.data)
            page = getattr(result, "next_page", None)
            if not getattr(result, "has_more", False) or not page:
                return found

    # -- webhooks: the account's events delivered to our sidecar --------------------------------

    def create_webhook_endpoint(
        self, *, url: str, events: list[str], description: str, idempotency_key: str
    ) -> tuple[str, str]:
        """(endpoint id, signing secret). Stripe shows the secret only in this answer."""
        created = self._call(
            lambda: self._client.v1.webhook_endpoints.create(
                {"url": url, "enabled_events": events, "description": description},  # type: ignore[typeddict-item]
                {"idempotency_key": idempotency_key},
            )
        )
        return str(created.id), str(created.secret)

    def delete_webhook_endpoints(self, *, url: str, keep: str | None = None) -> int:
        """Remove the account's endpoints that deliver to ``url`` (a reconnect makes a new one),
        but the one with id ``keep``."""
        listed = self._call(lambda: self._client.v1.webhook_endpoints.list({"limit": 100}))
        removed = 0
        for endpoint_id in [e.id for e in listed.data if e.url == url and e.id != keep]:
            self._call(functools.partial(self._client.v1.webhook_endpoints.delete, endpoint_id))
            removed += 1
        return removed

    # -- the platform account: plans (Checkout subscriptions) and Stripe Connect OAuth --------

    def ensure_price(self, *, lookup_key: str, amount: int, currency: str, name: str) -> str:
        """A monthly price found by ``lookup_key``, else created with it (so the platform's
        prices need no setup and a price edited in the dashboard is the one used)."""
        found = self._call(
            lambda: self._client.v1.prices.list({"lookup_keys": [lookup_key], "limit": 1})
        )
        if found.data:
            return str(found.data[0].id)
        created = self._call(
            lambda: self._client.v1.prices.create(
                {
                    "unit_amount": amount,
                    "currency": currency,
                    "recurring": {"interval": "month"},
                    "lookup_key": lookup_key,
                    "product_data": {"name": name},
                },
                {"idempotency_key": f"price:{lookup_key}:{amount}:{currency}"},
            )
        )
        return str(created.id)

    def create_subscription_checkout(
        self,
        *,
        price_id: str,
        success_url: str,
        cancel_url: str,
        client_reference_id: str,
        metadata: dict[str, str],
        customer: str | None = None,
    ) -> str:
        """A Checkout Session in subscription mode; returns the hosted page's URL. The metadata
        goes on the session and on the subscription it creates (webhooks carry both)."""
        params: dict[str, Any] = {
            "mode": "subscription",
            "line_items": [{"price": price_id, "quantity": 1}],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "client_reference_id": client_reference_id,
            "metadata": metadata,
            "subscription_data": {"metadata": metadata},
        }
        if customer:
            params["customer"] = customer
        session = self._call(
            lambda: self._client.v1.checkout.sessions.create(params)  # type: ignore[arg-type]
        )
        return str(session.url)

    def connect_authorize_url(
        self, *, client_id: str, redirect_uri: str, state: str, scope: str = "read_write"
    ) -> str:
        """Where to send an owner to connect their Stripe account to the platform."""
        return self._client.oauth.authorize_url(
            {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "state": state,
                "scope": scope,
                "response_type": "code",
            }
        )

    def connect_token(self, *, code: str) -> dict[str, str]:
        """Exchange a Connect authorization code (platform key) for the account's tokens."""
        token = self._call(
            lambda: self._client.oauth.token({"grant_type": "authorization_code", "code": code})
        )
        data = token.to_dict()
        return {
            "access_token": str(data["access_token"]),
            "refresh_token": str(data.get("refresh_token") or ""),
            "stripe_user_id": str(data["stripe_user_id"]),
            "stripe_publishable_key": str(data.get("stripe_publishable_key") or ""),
        }

    def connect_deauthorize(self, *, client_id: str, stripe_user_id: str) -> None:
        """Disconnect a Connect account from the platform (its tokens stop working)."""
        self._call(
            lambda: self._client.oauth.deauthorize(
                {"client_id": client_id, "stripe_user_id": stripe_user_id}
            )
        )
