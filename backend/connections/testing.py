"""A connection's test, apart from the database: the checks made before it (the key's shape and,
where the provider has one, its settings' check), the test itself, run with no transaction
open (docs/security/transactions.md). Each request the test makes is logged as any provider
call is (backend/integrations/call_log.py), in the scope the caller names.

Covered by tests/connections/test_service.py (through connect, test and the OAuth callbacks).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from backend.integrations.base import ConnectionTest, InvalidCredentials, Provider, ProviderContext
from backend.integrations.errors import ProviderError
from backend.platform.errors import InvalidInput

# Tests stored secrets that the provider's key form does not describe (OAuth tokens). It may
# renew them in the dict it is given: what it leaves there is what gets stored.
Tester = Callable[[dict[str, Any]], ConnectionTest]


def check_settings(prov: Provider, settings: BaseModel, context: ProviderContext) -> None:
    """The provider's own check of its settings, where it has one (a sender address, a URL,
    a Page id), as a refusal naming the field."""
    check = getattr(prov, "check_settings", None)
    if check is None:
        return
    try:
        check(settings, context)
    except InvalidCredentials as exc:
        raise InvalidInput(str(exc), field=exc.field) from None


def check_credentials(prov: Provider, credentials: BaseModel, context: ProviderContext) -> None:
    """What cannot be right about the keys, before any call, as a refusal naming the field."""
    try:
        prov.check_credentials(credentials, context)
    except InvalidCredentials as exc:
        raise InvalidInput(str(exc), field=exc.field) from None


def run(call: Callable[[], ConnectionTest]) -> ConnectionTest:
    """Run a connection test (the caller holds no transaction). An adapter's error is the
    outcome, in words safe to show; anything else is a bug and propagates."""
    started = time.perf_counter()
    try:
        return call()
    except ProviderError as exc:
        elapsed = round((time.perf_counter() - started) * 1000)
        return ConnectionTest(False, str(exc), elapsed, error=exc)


def stored(
    prov: Provider,
    secrets: dict[str, Any],
    settings: Mapping[str, Any],
    context: ProviderContext,
    tester: Tester | None = None,
) -> ConnectionTest:
    """Test stored-shape secrets. Fields the provider's form does not know (OAuth's refresh
    token, the account id) are ignored by pydantic; missing ones make a failed test, with no
    call. With ``tester``, it tests them instead of the provider's key-form test."""
    if tester is not None:
        return run(lambda: tester(secrets))
    try:
        creds = prov.credentials_model.model_validate(dict(secrets))
        settings_model = prov.settings_model.model_validate(dict(settings))
    except ValidationError as exc:
        names = ", ".join(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
        return ConnectionTest(
            False, f"The stored credentials are incomplete ({names}); reconnect.", 0
        )
    return run(lambda: prov.test_connection(creds, settings_model, context))
