"""A workspace with Stripe connected to a fresh sandbox account, for invoice tests: its owner,
draining the outbox, and what our table and Stripe each hold for a show. The sandbox delivers
its webhooks to a test receiver, never to our sidecar: a test sees only what it delivers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

import backend.sandbox.messenger as messenger_emulator
import backend.sandbox.stripe as stripe_emulator
from backend.jobs.runner import Runner
from backend.platform.actors import Actor
from models import Invoice, JobStatus, OutboxJob, Role
from tests.sandbox.stripe_support import client, new_account
from tests.support.hub_env import apply, connect_stripe
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox


@dataclass
class Shop:
    engine: Engine
    sandbox: RunningSandbox
    key: str
    workspace_id: int

    @property
    def owner(self) -> Actor:
        return Actor(operator_id=1, workspace_id=self.workspace_id, role=Role.OWNER)

    def drain(self, rounds: int = 40) -> None:
        runner = Runner(self.engine, "test-worker", batch=50)
        for _ in range(rounds):
            report = runner.run_once()
            if not report.claimed and not _due_jobs(self.engine):
                return

    def job_errors(self) -> list[str]:
        with Session(self.engine) as session:
            return [e for e in session.scalars(select(OutboxJob.last_error)) if e]

    def stripe_invoices(self, show_id: int) -> list[object]:
        sdk = client(self.sandbox.url, self.key)
        found = sdk.v1.invoices.search({"query": f"metadata['hub_show_id']:'{show_id}'"})
        return list(found.data)

    def invoices(self, show_id: int) -> list[Invoice]:
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(Invoice).where(Invoice.show_id == show_id).order_by(Invoice.id)
                )
            )


def _due_jobs(engine: Engine) -> int:
    with Session(engine) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(OutboxJob)
                .where(OutboxJob.status.in_([JobStatus.PENDING, JobStatus.RUNNING]))
            )
            or 0
        )


def open_shop(
    make_sandbox: MakeSandbox,
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> Shop:
    sandbox = make_sandbox(providers=[stripe_emulator, messenger_emulator])
    key = new_account(sandbox.url)["secret_key"]
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    workspace_id = connect_stripe(engine, secret_key=key)
    return Shop(engine, sandbox, key, workspace_id)


@pytest.fixture
def shop(
    make_sandbox: MakeSandbox,
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> Shop:
    """A connected shop for any test that asks for one (a pytest plugin: see tests/conftest.py)."""
    return open_shop(make_sandbox, engine, db_url, monkeypatch, hub_env)
