"""What every provider emulator is handed: the store, the switches, the deliverer and where the
sandbox and the product can be reached.

Tested in tests/sandbox/, through the emulators that use it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from fastapi import APIRouter
from starlette.responses import Response

from backend.sandbox.delivery import Deliverer
from backend.sandbox.store import Store
from backend.sandbox.switches import Switches


@dataclass(frozen=True)
class Section:
    """A table on the control page. Cells are HTML as given: escape what came from a request."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class SandboxContext:
    store: Store
    switches: Switches
    deliverer: Deliverer
    # Where browsers and SDKs reach the sandbox, e.g. http://127.0.0.1:8200 (no trailing slash).
    public_url: str
    # Default webhook receivers per provider (the sidecar in `make run`); tests set their own.
    webhook_targets: dict[str, str] = field(default_factory=dict)


class ProviderEmulator(Protocol):
    """What a provider module exposes (see backend/sandbox/stripe/ for the largest one)."""

    NAME: str
    PREFIX: str

    def render_error(self, status: int, kind: str, message: str) -> Response: ...

    def build_router(self, ctx: SandboxContext) -> APIRouter: ...

    def summary(self, ctx: SandboxContext) -> list[Section]: ...

    # Optional: ``seed(ctx)`` fills the demo workspaces' accounts at start-up (demo_accounts).
    # Optional: ``rate_key(ctx, authorization, headers)`` names what the provider's rate limit
    # counts per (Stripe: the account a key belongs to); without it, each API key.


SummaryFn = Callable[[SandboxContext], list[Section]]
