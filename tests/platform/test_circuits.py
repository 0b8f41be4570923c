"""Issue 13, item 2: breakers and rate-limit buckets are per connected account, and claims are
fair across workspaces. Workspace A's outage, rate-limit debt or thousand queued jobs never
hold workspace B's work; the platform's own account has a breaker of its own."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend import config
from backend.integrations.errors import ProviderUnavailable
from backend.jobs.runner import Runner
from backend.platform import circuits, outbox
from models import JobStatus, OutboxJob, ProviderCircuit, Workspace, utcnow
from tests import factories


@outbox.job_kind("test.fair_remote", provider="fairpay", backoff=(0.0,), max_attempts=50)
def _remote(session: Session, job: outbox.JobContext) -> None:
    if job.payload.get("fail"):
        raise ProviderUnavailable("fairpay answered 500: account A is down")


@pytest.fixture
def two_workspaces(session: Session) -> tuple[Workspace, Workspace]:
    a, b = factories.workspace(session, slug="a"), factories.workspace(session, slug="b")
    session.commit()
    return a, b


@pytest.fixture
def quick_circuit() -> object:
    previous = circuits.POLICY
    circuits.set_policy(
        circuits.CircuitPolicy(consecutive_failures=3, open_for=dt.timedelta(minutes=5))
    )
    yield
    circuits.set_policy(previous)


def _enqueue(session: Session, workspace: Workspace | None, key: str, **payload: object) -> None:
    outbox.enqueue(
        session,
        kind="test.fair_remote",
        payload=dict(payload),
        idempotency_key=key,
        workspace_id=workspace.id if workspace else None,
    )


def test_a_workspaces_open_breaker_does_not_hold_another_workspaces_jobs(
    engine: Engine, two_workspaces: tuple[Workspace, Workspace], quick_circuit: object
) -> None:
    a, b = two_workspaces
    with Session(engine) as session:
        for n in range(3):
            _enqueue(session, a, f"a{n}", fail=True)
        session.commit()
    runner = Runner(engine, "w", batch=10)
    assert runner.run_once().retried == 3
    with Session(engine) as session:
        assert session.get_one(ProviderCircuit, f"fairpay:ws{a.id}").state == "open"
        assert session.get(ProviderCircuit, f"fairpay:ws{b.id}") is None
        _enqueue(session, a, "a-later")
        _enqueue(session, b, "b-one")
        session.commit()
    report = runner.run_once()
    # B's job runs; A's new one waits behind A's open breaker (and no attempt of A's is spent).
    assert (report.claimed, report.done) == (1, 1)
    with Session(engine) as session:
        jobs = {j.idempotency_key: j for j in session.query(OutboxJob)}
        assert jobs["b-one"].status is JobStatus.DONE
        assert jobs["a-later"].status is JobStatus.PENDING and jobs["a-later"].attempts == 0
        assert jobs["b-one"].circuit_key == f"fairpay:ws{b.id}"
        assert jobs["a-later"].circuit_key == f"fairpay:ws{a.id}"
        assert session.get_one(ProviderCircuit, f"fairpay:ws{b.id}").state == "closed"


def test_the_platform_accounts_breaker_is_separate_from_the_workspaces(
    session: Session, two_workspaces: tuple[Workspace, Workspace], quick_circuit: object
) -> None:
    a, _ = two_workspaces
    now = utcnow()
    for _ in range(3):
        circuits.record(session, provider="fairpay", workspace_id=None, ok=False, now=now)
    _enqueue(session, None, "platform")
    _enqueue(session, a, "a")
    session.commit()
    # The platform's account is down: a workspace's own account still goes.
    assert [job.workspace_id for job in outbox.claim(session, worker="w")] == [a.id]
    session.commit()
    assert session.get_one(ProviderCircuit, "fairpay:platform").state == "open"
    assert circuits.states(session, workspace_id=a.id) == []  # nor does A see it
    # And the other way round: a workspace's outage leaves the platform's breaker closed.
    for _ in range(3):
        circuits.record(session, provider="fairpay", workspace_id=a.id, ok=False, now=now)
    circuits.record(session, provider="fairpay", workspace_id=None, ok=True, now=now)
    session.commit()
    assert session.get_one(ProviderCircuit, "fairpay:platform").state == "closed"
    assert session.get_one(ProviderCircuit, f"fairpay:ws{a.id}").state == "open"
    assert [job.workspace_id for job in outbox.claim(session, worker="w")] == [None]


def test_a_workspace_in_rate_limit_debt_does_not_delay_another(
    session: Session, two_workspaces: tuple[Workspace, Workspace]
) -> None:
    a, b = two_workspaces
    now = utcnow()
    rate = circuits.RATE_LIMITS["stripe"]
    # A asks for two seconds' worth of requests at once: its later ones wait their turns.
    waits = [
        circuits.reserve_token(session, provider="stripe", workspace_id=a.id, now=now)
        for _ in range(int(rate * 2))
    ]
    assert waits[-1] > 1.0
    # B's first request goes at once, and so do a burst's worth.
    burst = int(rate * circuits.BURST_SECONDS)
    assert [
        circuits.reserve_token(session, provider="stripe", workspace_id=b.id, now=now)
        for _ in range(burst)
    ] == [0.0] * burst
    # The platform's own account has its own bucket too.
    assert circuits.reserve_token(session, provider="stripe", workspace_id=None, now=now) == 0.0


def test_claims_are_fair_across_workspaces(
    session: Session, two_workspaces: tuple[Workspace, Workspace]
) -> None:
    """A has 100 jobs queued before B's one: B's job is in the first claim, not the tenth."""
    a, b = two_workspaces
    for n in range(100):
        _enqueue(session, a, f"a{n}")
    session.commit()
    _enqueue(session, b, "b")
    session.commit()
    first = outbox.claim(session, worker="w", limit=10)
    assert b.id in [job.workspace_id for job in first]
    # A's own jobs still go in the order A queued them.
    taken = [int(job.idempotency_key[1:]) for job in first if job.workspace_id == a.id]
    assert taken == sorted(taken) == list(range(len(taken)))


def test_two_long_queues_are_claimed_in_turns(
    session: Session, two_workspaces: tuple[Workspace, Workspace]
) -> None:
    a, b = two_workspaces
    for n in range(50):
        _enqueue(session, a, f"a{n}")
    session.commit()
    for n in range(50):
        _enqueue(session, b, f"b{n}")
    session.commit()
    owners = [job.workspace_id for job in outbox.claim(session, worker="w", limit=20)]
    assert owners.count(a.id) == owners.count(b.id) == 10


def test_a_replay_goes_back_in_turn_behind_other_workspaces_work(
    session: Session, two_workspaces: tuple[Workspace, Workspace]
) -> None:
    """A replay of A's dead jobs is not put ahead of what B queued meanwhile."""
    from backend.platform import outbox_operators
    from backend.platform.actors import Actor
    from models import Role

    a, b = two_workspaces
    for n in range(20):
        _enqueue(session, a, f"a{n}")
    session.commit()
    for job in session.query(OutboxJob):
        # They died yesterday: their first turns are long past.
        job.status, job.fair_at = JobStatus.DEAD, job.fair_at - dt.timedelta(days=1)
    _enqueue(session, b, "b")
    session.commit()
    outbox_operators.replay(session, actor=Actor(1, a.id, Role.OWNER))
    session.commit()
    first = outbox.claim(session, worker="w", limit=3)
    assert b.id in [job.workspace_id for job in first]


def test_the_open_period_comes_from_the_settings_and_doubles_up_to_the_longest(
    monkeypatch: pytest.MonkeyPatch, hub_env: dict[str, str]
) -> None:
    """HUB_BREAKER_OPEN_SECONDS and HUB_BREAKER_MAX_OPEN_SECONDS (what the journey 4 test makes
    short for its scheduler processes); a policy's own period wins over the setting."""
    default = circuits.CircuitPolicy()
    assert [default.open_period(n).total_seconds() for n in (1, 2, 6, 500)] == [30, 60, 600, 600]
    hub_env.update(HUB_BREAKER_OPEN_SECONDS="2", HUB_BREAKER_MAX_OPEN_SECONDS="5")
    for key, value in hub_env.items():
        monkeypatch.setenv(key, value)
    config.get_settings.cache_clear()  # (hub_env clears it again at the end)
    assert [default.open_period(n).total_seconds() for n in (1, 2, 3)] == [2, 4, 5]
    own = circuits.CircuitPolicy(open_for=dt.timedelta(seconds=1))
    assert [own.open_period(n).total_seconds() for n in (1, 2, 9)] == [1, 2, 5]
