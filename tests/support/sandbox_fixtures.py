"""Fixtures: the provider sandbox on a loopback port, fresh for each test, with fast webhook
retries, and a receiver for the webhooks it sends. Registered in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest

from backend.sandbox.app import create_app
from backend.sandbox.context import ProviderEmulator, SandboxContext
from backend.sandbox.delivery import RetryPolicy
from tests.support.servers import WebhookReceiver, serve, webhook_receiver

FAST_RETRIES = RetryPolicy(first_delay=0.05, factor=2.0, max_delay=0.5, max_attempts=6)


@dataclass
class RunningSandbox:
    url: str
    ctx: SandboxContext

    def switch(self, **body: object) -> None:
        response = httpx.post(f"{self.url}/_sandbox/switches", json=body, timeout=10)
        response.raise_for_status()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as running:
        yield running


MakeSandbox = Callable[..., RunningSandbox]


@pytest.fixture
def make_sandbox(receiver: WebhookReceiver) -> Iterator[MakeSandbox]:
    """Start a sandbox with some or all emulators; webhooks go to ``receiver`` at /<provider>."""
    with ExitStack() as stack:

        def make(providers: Sequence[ProviderEmulator] | None = None) -> RunningSandbox:
            targets = {n: f"{receiver.url}/{n}" for n in ("stripe", "sendgrid")}
            app = create_app(
                public_url="http://127.0.0.1",
                webhook_targets=targets,
                providers=providers,
                retry_policy=FAST_RETRIES,
            )
            url = stack.enter_context(serve(app))
            ctx: SandboxContext = app.state.ctx
            # The port is known only now; everything the sandbox renders reads it from here.
            ctx.public_url = url
            return RunningSandbox(url, ctx)

        yield make


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox()
