"""Small helpers the provider modules share: narrowing a form's model to the provider's own, one
plain HTTP request within its total deadline (for providers without an official SDK), and turning
its answer into provider-neutral errors.

Tested in tests/integrations/, through every adapter.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from backend.integrations.deadline import http_client, within
from backend.integrations.errors import (
    ProviderAuthFailed,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)

M = TypeVar("M", bound=BaseModel)

# One attempt, bounded: retries belong to the outbox, and a "Test connection" click must answer.
# The per-operation timeout (connect, each read) and, since a read's restarts with every byte,
# the whole call's deadline (backend/integrations/deadline.py).
HTTP_TIMEOUT = httpx.Timeout(10.0)
CALL_SECONDS = 10.0


def expect(value: BaseModel, model: type[M]) -> M:
    """The registry hands models around as ``BaseModel``; a provider only accepts its own."""
    if isinstance(value, model):
        return value
    # Validating from the other model's fields lets a caller pass an equivalent model, while a
    # wrong provider's credentials still fail loudly (a programming error, not operator input).
    return model.model_validate(value.model_dump())


def retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def raise_for_http_status(provider: str, response: httpx.Response, detail: str) -> None:
    """Map a non-2xx answer to the error the outbox understands; ``detail`` is what the provider
    said (never the request, which carries the token)."""
    status = response.status_code
    if status < 400:
        return
    if status == 429:
        raise ProviderRateLimited(
            f"{provider} rate limit: {detail}", retry_after=retry_after(response)
        )
    if status >= 500:
        raise ProviderUnavailable(f"{provider} answered {status}: {detail}")
    if status in (401, 403):
        raise ProviderAuthFailed(f"{provider} refused the credentials: {detail}", status=status)
    raise ProviderRejected(f"{provider} refused the request: {detail}", status=status)


def unreachable(provider: str, exc: Exception) -> ProviderUnavailable:
    # The exception's text can hold the URL (and for some providers a token in a query string):
    # only its type goes into the message.
    return ProviderUnavailable(f"{provider} could not be reached: {type(exc).__name__}")


def request(
    provider: str,
    method: str,
    url: str,
    *,
    slug: str,
    seconds: float = CALL_SECONDS,
    **kwargs: Any,
) -> httpx.Response:
    """One HTTP request to ``provider``, over in ``seconds`` however the server answers; an
    unreachable provider (or one that ran out the time: ``ProviderTimeout``) is unavailable."""
    with within(provider, seconds, slug=slug):
        try:
            with http_client(HTTP_TIMEOUT) as client:
                return client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise unreachable(provider, exc) from None
