"""What every provider module declares: who it is (``ProviderInfo``), what its key form asks for
(a pydantic ``Credentials`` model whose ``SecretStr`` fields are the secrets), its per-workspace
settings (a pydantic ``Settings`` model), and how to test a connection.

Keep this protocol narrow: a provider module adds the operations the services need as plain
methods on its own adapter; the registry only needs what is here.

Tested in tests/integrations/ and tests/connections/test_service.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel

from backend.integrations.public_address import Resolver, system_resolver


class Category(StrEnum):
    PAYMENTS = "Payments and invoicing"
    EMAIL = "Email"
    FILES = "Files"
    MESSAGING = "Messaging and alerts"
    ACCOUNTING = "Accounting"
    CRM = "CRM"
    AUTOMATION = "Automation"
    COMMERCE = "Commerce"


class PlanTier(StrEnum):
    """Mirrors models.Plan; adapters do not import models."""

    FREE = "free"
    PRO = "pro"
    BUSINESS = "business"


class Method(StrEnum):
    API_KEY = "api_key"
    OAUTH = "oauth"


@dataclass(frozen=True)
class ProviderInfo:
    slug: str
    name: str
    category: Category
    description: str
    # The lowest plan that may connect it.
    minimum_plan: PlanTier
    # Path under assets/ of its logo (SVG).
    logo: str
    methods: tuple[Method, ...] = (Method.API_KEY,)
    available: bool = True
    # "Payments" providers count towards the Pro plan's limit of one.
    payment_provider: bool = False
    docs_url: str = ""
    # One provider account serves one workspace: connecting an account another workspace has
    # connected is refused (a business's money must not reach another business's account).
    one_workspace_per_account: bool = False


class EmptyModel(BaseModel):
    """For providers with no credentials or no settings."""


@dataclass(frozen=True)
class ConnectionTest:
    """The answer of a "Test connection": what the provider said, in words for the operator."""

    ok: bool
    message: str
    latency_ms: int
    # What the provider told us about the account (name, id), shown on the manage page.
    account: dict[str, Any] = field(default_factory=dict)
    # The adapter's error when the test failed: says whether the key was refused or the
    # provider was unavailable (backend/services/provider_failures.py decides what follows).
    error: Exception | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ProviderContext:
    """What the services hand an adapter: where the provider is (sandbox or live), whether this
    is live mode (test keys are refused there), a throttle to call before each request, and
    how host names are looked up where an operator's URL is checked before a request (tests
    answer with their own addresses; nothing else changes it)."""

    live: bool
    sandbox_url: str | None
    throttle: Callable[[], None] = lambda: None
    resolve: Resolver = system_resolver


class Provider(Protocol):
    """One provider module's declaration, as the registry lists it."""

    info: ProviderInfo
    credentials_model: type[BaseModel]
    settings_model: type[BaseModel]

    def check_credentials(self, credentials: BaseModel, context: ProviderContext) -> None:
        """Refuse, before any call, what cannot be right (a publishable key where a secret key
        belongs, a test key in live mode, a malformed service-account JSON): raise
        ``InvalidCredentials`` with a message saying what to paste instead."""
        ...

    def test_connection(
        self, credentials: BaseModel, settings: BaseModel, context: ProviderContext
    ) -> ConnectionTest: ...


class InvalidCredentials(ValueError):
    """The operator's input is wrong in a way they can fix; ``field`` names the form field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def timed(call: Callable[[], dict[str, Any]], ok_message: str) -> ConnectionTest:
    """Run a test call and wrap its outcome; adapters raise ProviderError subclasses on
    failure, whose text is the provider's answer in words."""
    from backend.integrations.errors import ProviderError

    started = time.perf_counter()
    try:
        account = call()
    except ProviderError as exc:
        elapsed = round((time.perf_counter() - started) * 1000)
        return ConnectionTest(False, str(exc), elapsed, error=exc)
    return ConnectionTest(True, ok_message, round((time.perf_counter() - started) * 1000), account)
