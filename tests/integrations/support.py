"""Contexts for adapter tests: sandbox mode against a running sandbox, and live mode (no calls
are made in live mode; it exists for the checks that refuse test keys and plain http)."""

from __future__ import annotations

from backend.integrations.base import ProviderContext
from tests.support.sandbox_fixtures import RunningSandbox

LIVE = ProviderContext(live=True, sandbox_url=None)


def sandboxed(sandbox: RunningSandbox) -> ProviderContext:
    return ProviderContext(live=False, sandbox_url=sandbox.url)


# Sandbox mode before any sandbox is running: for checks that make no call.
OFFLINE = ProviderContext(live=False, sandbox_url=None)
