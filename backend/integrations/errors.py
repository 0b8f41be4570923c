"""Provider-neutral outcomes that adapters raise, so services and the outbox can decide what to
do (wait, retry, give up) without knowing any SDK.

Tested in tests/integrations/ (each adapter's error translation) and
tests/platform/test_outbox.py."""

from __future__ import annotations


class ProviderError(Exception):
    """Base for what an adapter raises; ``str()`` is safe to show and log (no secrets)."""


class ProviderUnavailable(ProviderError):
    """The provider is down, slow or answered 5xx: retry later; counts against its circuit."""


class ProviderTimeout(ProviderUnavailable):
    """The provider did not answer within ``seconds``: unavailable, said as what it is."""

    def __init__(self, message: str, *, seconds: float | None = None) -> None:
        super().__init__(message)
        self.seconds = seconds


class ProviderConnectionLost(ProviderUnavailable):
    """The connection broke after the request may have been sent (reset, closed before the
    answer): unlike a refused connection, the provider may have acted on it."""


class ProviderRateLimited(ProviderError):
    """The provider said slow down (429). Not a failure of the provider."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderRejected(ProviderError):
    """The provider refused the request itself (4xx): the same request will never succeed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.param = status, code, param


class ProviderAuthFailed(ProviderRejected):
    """The credentials are wrong, revoked or lack a permission: the operator must act."""
