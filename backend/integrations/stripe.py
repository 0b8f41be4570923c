"""Every call the product makes to Stripe, through the official SDK, and nothing else.

The adapter never touches the database or the settings: the service hands it the key, the base
URLs (the sandbox's or Stripe's) and a ``throttle`` to call before each request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import stripe

from backend.integrations.errors import (
    ProviderAuthFailed,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)

Throttle = Callable[[], None]


def _no_throttle() -> None:
    return None


@dataclass(frozen=True)
class StripeEndpoints:
    api: str | None = None  # None: Stripe's own
    connect: str | None = None

    @classmethod
    def sandbox(cls, base_url: str) -> StripeEndpoints:
        return cls(api=f"{base_url}/stripe", connect=f"{base_url}/stripe/connect")


@contextmanager
def translated_errors() -> Iterator[None]:
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
            f"Stripe refused the key: {exc.user_message}", status=exc.http_status
        ) from None
    except stripe.IdempotencyError as exc:
        raise ProviderRejected(
            f"Stripe idempotency conflict: {exc.user_message}", status=exc.http_status
        ) from None
    except stripe.APIConnectionError as exc:
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


class StripeAdapter:
    def __init__(
        self,
        api_key: str,
        *,
        endpoints: StripeEndpoints | None = None,
        throttle: Throttle = _no_throttle,
        timeout: float = 30.0,
    ) -> None:
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
            http_client=stripe.HTTPXClient(timeout=timeout, allow_sync_methods=True),
        )
        self._throttle = throttle

    def _call(self, fn: Callable[[], Any]) -> Any:
        self._throttle()
        with translated_errors():
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

    def ensure_customer(
        self, *, platform_user_id: str, email: str | None, name: str, idempotency_key: str
    ) -> str:
        """The buyer's customer: found by our metadata, else created (once, by key)."""
        query = f"metadata['platform_user_id']:'{platform_user_id}'"
        found = self._call(lambda: self._client.v1.customers.search({"query": query}))
        if found.data:
            return str(found.data[0].id)
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
