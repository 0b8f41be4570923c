"""What a failed provider call means, decided in one place for the connection test, the outbox's
jobs and the integration's status: a refused credential (the operator must act), the provider
unavailable (down, slow, 5xx: wait and retry), rate limited, or a bad request (this request will
never succeed); and the words a person reads about it, with secrets and personal data removed.

Tested in tests/platform/test_outbox.py and tests/connections/test_provider_status.py (errors in
scrubbed words).
"""

from __future__ import annotations

import re
from enum import StrEnum

from backend.integrations.errors import (
    ProviderAuthFailed,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from backend.platform.errors import NotFound, ServiceError


class Failure(StrEnum):
    REFUSED_CREDENTIAL = "refused_credential"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"
    BAD_REQUEST = "bad_request"
    # The integration is missing or disconnected: nothing to call.
    NOT_CONNECTED = "not_connected"
    # Anything else: our own bug, not the provider's doing.
    INTERNAL = "internal"


def classify(error: BaseException) -> Failure:
    # Imported here: the outbox imports this module for its messages.
    from backend.platform.outbox import PermanentFailure, RetryLater

    if isinstance(error, ProviderAuthFailed):
        return Failure.REFUSED_CREDENTIAL
    if isinstance(error, ProviderRateLimited):
        return Failure.RATE_LIMITED
    if isinstance(error, ProviderUnavailable):
        return Failure.UNAVAILABLE
    if isinstance(error, (ProviderRejected, PermanentFailure)):
        return Failure.BAD_REQUEST
    if isinstance(error, RetryLater):
        return Failure.RATE_LIMITED if error.rate_limited else Failure.UNAVAILABLE
    if isinstance(error, NotFound):
        return Failure.NOT_CONNECTED
    return Failure.INTERNAL


# Values that must never be stored or shown: keys and tokens of the providers we call, and the
# e-mail addresses a provider may quote back ("Invalid email address: ...").
_SECRETS = re.compile(
    r"\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9]+|\bxox[abprs]-[A-Za-z0-9-]+"
    r"|\bSG\.[A-Za-z0-9_.-]+|\bEAA[A-Za-z0-9]{10,}|\bya29\.[A-Za-z0-9_.-]+"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+"
)
_EMAILS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def scrub(text: str) -> str:
    """``text`` without anything that looks like a key, a token or an e-mail address."""
    return _EMAILS.sub("[email]", _SECRETS.sub("[secret]", text))


def describe(error: BaseException) -> str:
    """The error in words for a person (a job row, an integration's last error), safe to store:
    "Stripe answered 500: …", "Stripe did not answer within 30 s", "Stripe refused the key
    (401): …". Adapters and services already speak in words; anything else is a bug, said as
    one, with its type for whoever fixes it."""
    from backend.platform.outbox import PermanentFailure, RetryLater

    said = str(error).strip()
    if isinstance(error, (ProviderError, ServiceError, PermanentFailure, RetryLater)):
        text = said or type(error).__name__
    else:
        text = f"Unexpected error in the job ({type(error).__name__})" + (
            f": {said}" if said else ""
        )
    return scrub(text)[:2000]


def provider_name(slug: str) -> str:
    """The provider's name for sentences ("Stripe"), from the registry; the slug if unknown."""
    from backend.integrations import registry

    try:
        found = registry.get(slug)
    except LookupError:
        found = None
    return found.info.name if found is not None else slug
