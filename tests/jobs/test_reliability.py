"""The outbox against a real provider (the Stripe sandbox over loopback HTTP): workers killed
mid-job, and a provider outage. Every job finishes, and each side effect happens once."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

import backend.sandbox.stripe as stripe_emulator
from backend.invoicing import buyers
from backend.jobs.runner import Runner
from backend.platform import circuits, outbox
from models import Buyer, JobStatus, OutboxJob, ProviderCircuit
from tests.sandbox.stripe_support import client, new_account
from tests.support.hub_env import apply, connect_stripe
from tests.support.processes import ROOT, env_for
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox


def _buyers(engine: Engine, workspace_id: int, count: int) -> None:
    with Session(engine) as session:
        for n in range(count):
            buyer = Buyer(
                workspace_id=workspace_id,
                platform_user_id=f"fb_{n}",
                handle=f"b{n}",
                email=f"b{n}@example.com" if n % 2 else None,
            )
            session.add(buyer)
            session.flush()
            buyers.request_customer_sync(session, buyer=buyer)
        session.commit()


def _statuses(engine: Engine) -> dict[JobStatus, int]:
    with Session(engine) as session:
        return dict(
            session.execute(select(OutboxJob.status, func.count()).group_by(OutboxJob.status)).all()
        )


def _claims(engine: Engine) -> int:
    """Every claim adds one to its job's attempts: their sum moves when a worker has begun."""
    with Session(engine) as session:
        return int(session.scalar(select(func.coalesce(func.sum(OutboxJob.attempts), 0))) or 0)


def _sandbox_customers(sandbox: RunningSandbox, key: str) -> list[str]:
    sdk = client(sandbox.url, key)
    return [
        c.metadata["platform_user_id"]
        for c in sdk.v1.customers.list({"limit": 100}).auto_paging_iter()
    ]


def test_workers_killed_at_random_points_lose_and_repeat_nothing(
    make_sandbox: MakeSandbox,
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> None:
    sandbox = make_sandbox(providers=[stripe_emulator])
    key = new_account(sandbox.url)["secret_key"]
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    workspace_id = connect_stripe(engine, secret_key=key)
    count = 120
    _buyers(engine, workspace_id, count)

    env = env_for(
        db_url,
        **{k: v for k, v in hub_env.items() if k != "HUB_DATABASE_URL"},
        HUB_OUTBOX_LEASE_SECONDS="2",
        HUB_OUTBOX_RESCUE_SECONDS="1",
        HUB_HEARTBEAT_SECONDS="60",
    )
    rng = random.Random(7)
    kills = 0
    while kills < 20 and _statuses(engine).get(JobStatus.DONE, 0) < count:
        claims_before = _claims(engine)
        process = subprocess.Popen(
            [sys.executable, "scheduler.py"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # Kill at a random point of the work, not of the start-up: a process's start-up (imports,
        # the database check) takes from one to several seconds with the machine's load, and a
        # fixed delay from the start could land before any claim, interrupting nothing.
        started = time.monotonic() + 60
        while _claims(engine) == claims_before and time.monotonic() < started:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.6))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
    process = subprocess.Popen(
        [sys.executable, "scheduler.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while _statuses(engine).get(JobStatus.DONE, 0) < count:
            assert time.monotonic() < deadline, _statuses(engine)
            time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)

    assert _statuses(engine) == {JobStatus.DONE: count}
    with Session(engine) as session:
        # A job claimed by a worker that was killed is claimed again (its attempts counted).
        interrupted = session.scalar(
            select(func.count()).select_from(OutboxJob).where(OutboxJob.attempts > 1)
        )
    assert interrupted, "kills came too late to interrupt any job"
    created = _sandbox_customers(sandbox, key)
    assert sorted(created) == sorted(f"fb_{n}" for n in range(count))  # once each, none twice
    with Session(engine) as session:
        ids = session.scalars(select(Buyer.stripe_customer_id)).all()
    assert None not in ids and len(set(ids)) == count


@pytest.fixture
def fast_recovery() -> object:
    previous = circuits.POLICY
    circuits.set_policy(
        circuits.CircuitPolicy(consecutive_failures=3, open_for=dt.timedelta(seconds=0.5))
    )
    original = outbox.kinds()[buyers.SYNC_CUSTOMER]
    outbox.configure_kind(buyers.SYNC_CUSTOMER, backoff=(0.2,), max_attempts=4)
    yield
    circuits.set_policy(previous)
    outbox.configure_kind(
        buyers.SYNC_CUSTOMER, backoff=original.backoff, max_attempts=original.max_attempts
    )


def test_outage_holds_jobs_behind_the_breaker_and_they_drain_after(
    make_sandbox: MakeSandbox,
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
    fast_recovery: object,
) -> None:
    sandbox = make_sandbox(providers=[stripe_emulator])
    key = new_account(sandbox.url)["secret_key"]
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    workspace_id = connect_stripe(engine, secret_key=key)
    count = 30
    _buyers(engine, workspace_id, count)
    runner = Runner(engine, "w", batch=10)

    sandbox.switch(stripe={"outage": "errors"})
    for _ in range(15):  # well past max_attempts, were attempts being burned
        runner.run_once()
        time.sleep(0.1)
    with Session(engine) as session:
        circuit = session.get_one(ProviderCircuit, f"stripe:ws{workspace_id}")
        assert circuit.state in ("open", "half_open")
    statuses = _statuses(engine)
    assert JobStatus.DEAD not in statuses and statuses.get(JobStatus.DONE, 0) == 0

    sandbox.switch(stripe={"outage": "none"})
    deadline = time.monotonic() + 60
    while _statuses(engine).get(JobStatus.DONE, 0) < count:
        assert time.monotonic() < deadline, _statuses(engine)
        runner.run_once()
        time.sleep(0.05)
    assert _statuses(engine) == {JobStatus.DONE: count}
    assert sorted(_sandbox_customers(sandbox, key)) == sorted(f"fb_{n}" for n in range(count))
    with Session(engine) as session:
        assert session.get_one(ProviderCircuit, f"stripe:ws{workspace_id}").state == "closed"


def test_when_the_breaker_closes_the_jobs_that_waited_run_now_not_after_their_backoff(
    make_sandbox: MakeSandbox,
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
    quick_breaker: object,
) -> None:
    """Issue 11, point 4: a half-open probe that succeeds releases every job waiting on that
    account, instead of leaving them to a backoff of minutes; another workspace's account,
    whose breaker is still open, keeps its jobs waiting (issue 13, item 2)."""
    sandbox = make_sandbox(providers=[stripe_emulator])
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    workspaces = []
    for slug in ("first", "second"):
        key = new_account(sandbox.url)["secret_key"]
        workspaces.append(connect_stripe(engine, secret_key=key, slug=slug))
        _buyers(engine, workspaces[-1], 3)
    first, second = (f"stripe:ws{w}" for w in workspaces)
    runner = Runner(engine, "w", batch=10)

    sandbox.switch(stripe={"outage": "errors"})
    try:
        assert runner.run_once().retried == 6
    finally:
        sandbox.switch(stripe={"outage": "none"})
    with Session(engine) as session:
        # Each account failed three times: each breaker is open.
        assert session.get_one(ProviderCircuit, second).state == "open"
        circuit = session.get_one(ProviderCircuit, first)
        assert circuit.state == "open"
        waiting = session.scalars(select(OutboxJob)).all()
        # The default backoff: minutes away, in words.
        assert all(j.run_after > circuit.updated_at + dt.timedelta(minutes=3) for j in waiting)
        assert {j.last_error for j in waiting} == {
            "Stripe answered 500: The sandbox is simulating an outage."
        }
        circuit.opened_until = circuit.updated_at  # its open period is over: a probe may go
        session.commit()

    probe = runner.run_once()
    assert probe.claimed == 1 and probe.done == 1
    with Session(engine) as session:
        assert session.get_one(ProviderCircuit, first).state == "closed"
        assert session.get_one(ProviderCircuit, second).state == "open"
    # The first account's other two are due now: one more round runs them; the second's wait.
    assert runner.run_once().done == 2
    assert _statuses(engine) == {JobStatus.DONE: 3, JobStatus.PENDING: 3}


@pytest.fixture
def quick_breaker() -> object:
    previous = circuits.POLICY
    circuits.set_policy(circuits.CircuitPolicy(consecutive_failures=3))
    yield
    circuits.set_policy(previous)
