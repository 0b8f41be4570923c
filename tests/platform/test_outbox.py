"""The outbox: enqueue once, claim with leases, back off, die loudly, replay, pause, and hold
jobs behind an open circuit."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections import Counter
from collections.abc import Sequence

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.integrations.errors import ProviderRateLimited, ProviderRejected, ProviderUnavailable
from backend.jobs.runner import Runner
from backend.platform import circuits, outbox, outbox_operators
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, PermissionDenied
from models import Alert, AuditLog, JobStatus, OutboxJob, ProviderCircuit, Role, utcnow
from tests import factories

CALLS: Counter[str] = Counter()


@outbox.job_kind("test.noop")
def _noop(session: Session, job: outbox.JobContext) -> None:
    CALLS[job.idempotency_key] += 1


@outbox.job_kind("test.flaky", backoff=(60.0, 120.0), max_attempts=3)
def _flaky(session: Session, job: outbox.JobContext) -> None:
    error = job.payload.get("error")
    if error == "unavailable":
        raise ProviderUnavailable("down")
    if error == "rejected":
        raise ProviderRejected("bad parameter", status=400)
    if error == "rate":
        raise ProviderRateLimited("slow down", retry_after=7)
    if error == "boom":
        raise RuntimeError("boom")


@outbox.job_kind("test.remote", provider="testpay", backoff=(0.0,), max_attempts=50)
def _remote(session: Session, job: outbox.JobContext) -> None:
    if job.payload.get("fail"):
        raise ProviderUnavailable("testpay answered 500")
    if job.payload.get("quote"):
        raise ProviderUnavailable(
            "testpay answered 500: no customer ann@example.com (sk_test_abc123XYZ)"
        )
    CALLS[job.idempotency_key] += 1


@outbox.job_kind("test.remote_slow", provider="testpay", backoff=(300.0,), max_attempts=2)
def _remote_slow(session: Session, job: outbox.JobContext) -> None:
    raise ProviderUnavailable("testpay answered 500")


def _jobs(session: Session) -> list[OutboxJob]:
    session.expire_all()
    return list(session.scalars(select(OutboxJob).order_by(OutboxJob.id)))


def test_enqueue_twice_with_one_key_adds_one_job(session: Session) -> None:
    first = outbox.enqueue(session, kind="test.noop", payload={}, idempotency_key="k")
    again = outbox.enqueue(session, kind="test.noop", payload={"other": 1}, idempotency_key="k")
    session.commit()
    assert first is not None and again is None
    assert len(_jobs(session)) == 1


def test_unknown_kind_is_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="unknown job kind"):
        outbox.enqueue(session, kind="nope", payload={}, idempotency_key="x")


def test_claim_takes_due_jobs_once_and_holds_a_lease(session: Session) -> None:
    now = utcnow()
    outbox.enqueue(session, kind="test.noop", payload={}, idempotency_key="due", run_after=now)
    outbox.enqueue(
        session,
        kind="test.noop",
        payload={},
        idempotency_key="later",
        run_after=now + dt.timedelta(minutes=5),
    )
    session.commit()
    claimed = outbox.claim(session, worker="w1", lease_seconds=30, now=now)
    session.commit()
    assert [c.idempotency_key for c in claimed] == ["due"]
    assert outbox.claim(session, worker="w2", now=now) == []
    job = _jobs(session)[0]
    assert (job.status, job.lease_owner, job.attempts) == (JobStatus.RUNNING, "w1", 1)
    assert job.lease_until == now + dt.timedelta(seconds=30)


def test_concurrent_workers_never_claim_the_same_job(engine: Engine) -> None:
    with Session(engine) as session:
        for n in range(300):
            outbox.enqueue(session, kind="test.noop", payload={}, idempotency_key=f"c{n}")
        session.commit()
    taken: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while True:
            with Session(engine) as session:
                claimed = outbox.claim(session, worker=name, limit=7)
                session.commit()
            if not claimed:
                return
            with lock:
                taken.extend(c.id for c in claimed)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == 300 and len(set(taken)) == 300


def test_only_the_lease_owner_completes(session: Session) -> None:
    outbox.enqueue(session, kind="test.noop", payload={}, idempotency_key="a")
    session.commit()
    [job] = outbox.claim(session, worker="w1")
    assert outbox.complete(session, [job.id], worker="intruder") == 0
    assert outbox.complete(session, [job.id], worker="w1") == 1
    session.commit()
    assert _jobs(session)[0].status is JobStatus.DONE


def test_failures_back_off_with_jitter_then_die_with_an_alert(session: Session) -> None:
    ws = factories.workspace(session)
    outbox.enqueue(
        session,
        kind="test.flaky",
        payload={"error": "unavailable"},
        idempotency_key="f",
        workspace_id=ws.id,
    )
    session.commit()
    now = utcnow()
    delays = []
    for attempt in range(1, 4):
        [job] = outbox.claim(session, worker="w", now=now)
        status = outbox.fail(session, job, ProviderUnavailable("down"), worker="w", now=now)
        session.commit()
        row = _jobs(session)[0]
        if attempt < 3:
            assert status is JobStatus.PENDING and row.attempts == attempt
            delays.append((row.run_after - now).total_seconds())
            now = row.run_after
        else:
            assert status is JobStatus.DEAD and row.finished_at is not None
    assert 48 <= delays[0] <= 72 and 96 <= delays[1] <= 144
    alert = session.scalars(select(Alert)).one()
    assert alert.type == "job.dead" and alert.workspace_id == ws.id
    assert "replay" in alert.message


def test_a_refused_request_dies_at_once(session: Session) -> None:
    outbox.enqueue(session, kind="test.flaky", payload={}, idempotency_key="r")
    session.commit()
    [job] = outbox.claim(session, worker="w")
    assert outbox.fail(session, job, ProviderRejected("bad", status=400), worker="w") is (
        JobStatus.DEAD
    )


def test_rate_limit_waits_for_retry_after_without_using_an_attempt(session: Session) -> None:
    outbox.enqueue(session, kind="test.flaky", payload={}, idempotency_key="rl")
    session.commit()
    now = utcnow()
    [job] = outbox.claim(session, worker="w", now=now)
    outbox.fail(session, job, ProviderRateLimited("429", retry_after=7), worker="w", now=now)
    session.commit()
    row = _jobs(session)[0]
    assert row.attempts == 0 and row.status is JobStatus.PENDING
    assert row.run_after == now + dt.timedelta(seconds=7)


def test_expired_leases_are_rescued(session: Session) -> None:
    outbox.enqueue(session, kind="test.noop", payload={}, idempotency_key="x")
    session.commit()
    now = utcnow()
    outbox.claim(session, worker="dead-worker", lease_seconds=10, now=now)
    session.commit()
    assert outbox.rescue_expired_leases(session, now=now + dt.timedelta(seconds=5)) == 0
    assert outbox.rescue_expired_leases(session, now=now + dt.timedelta(seconds=11)) == 1
    session.commit()
    [again] = outbox.claim(session, worker="w2", now=now + dt.timedelta(seconds=11))
    assert again.attempts == 2


def test_runner_batches_local_jobs_and_isolates_a_failure(engine: Engine) -> None:
    with Session(engine) as session:
        for n in range(5):
            outbox.enqueue(session, kind="test.noop", payload={}, idempotency_key=f"b{n}")
        outbox.enqueue(session, kind="test.flaky", payload={"error": "boom"}, idempotency_key="bad")
        session.commit()
    report = Runner(engine, "w").run_once()
    assert (report.claimed, report.done, report.retried) == (6, 5, 1)
    assert all(CALLS[f"b{n}"] >= 1 for n in range(5))
    with Session(engine) as session:
        statuses = Counter(j.status for j in _jobs(session))
    assert statuses == Counter({JobStatus.DONE: 5, JobStatus.PENDING: 1})


def test_replay_preview_and_replay_of_dead_jobs(session: Session) -> None:
    ws = factories.workspace(session)
    for n in range(3):
        outbox.enqueue(
            session, kind="test.flaky", payload={}, idempotency_key=f"d{n}", workspace_id=ws.id
        )
    session.commit()
    for job in outbox.claim(session, worker="w"):
        outbox.fail(session, job, ProviderRejected("no"), worker="w")
    session.commit()
    owner = Actor(1, ws.id, Role.OWNER)
    viewer = Actor(2, ws.id, Role.VIEWER)
    assert outbox_operators.preview_replay(session, workspace_id=ws.id, kind="test.flaky") == 3
    assert outbox_operators.preview_replay(session, workspace_id=ws.id, kind="test.noop") == 0
    with pytest.raises(PermissionDenied):
        outbox_operators.replay(session, actor=viewer, kind="test.flaky")
    first = _jobs(session)[0].id
    assert outbox_operators.replay(session, actor=owner, job_id=first) == 1
    assert outbox_operators.replay(session, actor=owner, kind="test.flaky") == 2
    session.commit()
    assert {(j.status, j.attempts) for j in _jobs(session)} == {(JobStatus.PENDING, 0)}


def test_paused_kinds_are_not_claimed(session: Session) -> None:
    ws = factories.workspace(session)
    owner = Actor(1, ws.id, Role.OWNER)
    outbox.enqueue(session, kind="test.noop", payload={}, idempotency_key="p", workspace_id=ws.id)
    outbox_operators.pause_kind(session, actor=owner, kind="test.noop")
    session.commit()
    assert outbox.claim(session, worker="w") == []
    outbox_operators.resume_kind(session, actor=owner, kind="test.noop")
    session.commit()
    assert len(outbox.claim(session, worker="w")) == 1


@pytest.fixture
def quick_circuit() -> object:
    previous = circuits.POLICY
    circuits.set_policy(
        circuits.CircuitPolicy(consecutive_failures=3, open_for=dt.timedelta(seconds=30))
    )
    yield
    circuits.set_policy(previous)


def test_open_circuit_holds_jobs_then_a_probe_closes_it(
    engine: Engine, quick_circuit: object
) -> None:
    with Session(engine) as session:
        for n in range(3):
            outbox.enqueue(
                session, kind="test.remote", payload={"fail": True}, idempotency_key=f"down{n}"
            )
        for n in range(4):
            outbox.enqueue(
                session,
                kind="test.remote",
                payload={},
                idempotency_key=f"ok{n}",
                run_after=utcnow() + dt.timedelta(milliseconds=200),
            )
        session.commit()
    runner = Runner(engine, "w", batch=3)
    runner.run_once()
    with Session(engine) as session:
        circuit = session.get_one(ProviderCircuit, "testpay:platform")
        assert circuit.state == "open"
        opened_until = circuit.opened_until
    import time

    time.sleep(0.3)
    # Open: due jobs wait, and no attempt is burned.
    assert runner.run_once().claimed == 0
    with Session(engine) as session:
        for job in _jobs(session):
            job.payload = {}  # the provider has recovered
        circuit = session.get_one(ProviderCircuit, "testpay:platform")
        assert opened_until is not None
        circuit.opened_until = utcnow() - dt.timedelta(seconds=1)  # the open period passes
        session.commit()
    probe = runner.run_once()
    assert probe.claimed == 1 and probe.done == 1
    with Session(engine) as session:
        assert session.get_one(ProviderCircuit, "testpay:platform").state == "closed"
    while runner.run_once().claimed:
        pass
    with Session(engine) as session:
        assert {j.status for j in _jobs(session)} == {JobStatus.DONE}
        assert (
            session.scalar(
                select(func.count())
                .select_from(OutboxJob)
                .where(OutboxJob.status == JobStatus.DEAD)
            )
            == 0
        )


def test_a_probe_that_finds_the_provider_down_uses_no_attempt_and_probes_rotate(
    engine: Engine, quick_circuit: object
) -> None:
    """Issue 14, journey 4 ("jobs wait instead of dying"): each open period's probe is a real
    call, but not the job's attempt; counted, the job that probes died of a long outage (here,
    of two probes). The next probe tests the job due soonest, not the same one again."""
    with Session(engine) as session:
        for key in ("a", "b"):
            outbox.enqueue(session, kind="test.remote_slow", payload={}, idempotency_key=key)
        for _ in range(3):
            circuits.record(session, provider="testpay", workspace_id=None, ok=False)
        session.commit()
    runner = Runner(engine, "w", batch=10)
    assert runner.run_once().claimed == 0  # open: both wait
    with Session(engine) as session:
        keys = {j.id: j.idempotency_key for j in _jobs(session)}
    probed = []
    for _ in range(5):
        with Session(engine) as session:
            circuit = session.get_one(ProviderCircuit, "testpay:platform")
            assert circuit.state == "open"
            circuit.opened_until = utcnow() - dt.timedelta(seconds=1)  # the open period passes
            session.commit()
        report = runner.run_once()
        assert (report.claimed, report.retried, report.dead) == (1, 1, 0)
        (error,) = report.errors  # "test.remote_slow#<id>: ProviderUnavailable"
        probed.append(keys[int(error.split("#")[1].split(":")[0])])
    # b, never tried, is due before a's backoff ends; then whichever backoff ends first.
    assert probed[:2] == ["a", "b"]
    with Session(engine) as session:
        jobs = _jobs(session)
    assert [(j.status, j.attempts) for j in jobs] == [(JobStatus.PENDING, 0)] * 2
    assert all(j.run_after > utcnow() + dt.timedelta(minutes=4) for j in jobs)  # backoff kept
    # Still jobs that failed: when the breaker closes they are due at once.
    with Session(engine) as session:
        assert outbox_operators.wake_waiting(session, provider="testpay", workspace_id=None) == 2


def test_rate_limit_bucket_refills(session: Session) -> None:
    now = utcnow()
    rate = circuits.RATE_LIMITS["stripe"]
    burst = int(rate * circuits.BURST_SECONDS)
    waits = [
        circuits.reserve_token(session, provider="stripe", workspace_id=None, now=now)
        for _ in range(burst + 1)
    ]
    assert waits[:burst] == [0.0] * burst
    assert 0 < waits[-1] <= 1 / rate
    # Once the debt is paid back and a token more has come in, a request goes at once again.
    later = now + dt.timedelta(seconds=2 / rate)
    assert circuits.reserve_token(session, provider="stripe", workspace_id=None, now=later) == 0.0


def test_reserved_turns_queue_up_at_the_rate_after_a_short_burst(session: Session) -> None:
    now = utcnow()
    rate = circuits.RATE_LIMITS["stripe"]
    waits = [
        circuits.reserve_token(session, provider="stripe", workspace_id=None, now=now)
        for _ in range(20)
    ]
    immediate = [wait for wait in waits if wait == 0.0]
    assert len(immediate) == int(rate * circuits.BURST_SECONDS)
    queued = waits[len(immediate) :]
    # The rest are given their turns, one every 1/rate seconds: nobody has to ask again.
    assert 0 < queued[0] <= 1 / rate
    assert [b - a for a, b in itertools.pairwise(queued)] == pytest.approx(
        [1 / rate] * (len(queued) - 1)
    )
    at_last_turn = now + dt.timedelta(seconds=queued[-1])
    assert circuits.reserve_token(
        session, provider="stripe", workspace_id=None, now=at_last_turn
    ) == pytest.approx(1 / rate)


def test_a_time_read_before_waiting_for_the_bucket_refills_nothing_twice(
    session: Session,
) -> None:
    now = utcnow()
    rate = circuits.RATE_LIMITS["stripe"]
    for _ in range(int(rate * circuits.BURST_SECONDS)):
        circuits.reserve_token(session, provider="stripe", workspace_id=None, now=now)
    # A worker read the clock, then waited for the row while another took the last token:
    # its earlier time must not refill the bucket again.
    earlier = now - dt.timedelta(seconds=0.5)
    first = circuits.reserve_token(session, provider="stripe", workspace_id=None, now=earlier)
    second = circuits.reserve_token(session, provider="stripe", workspace_id=None, now=now)
    assert 0 < first <= 1 / rate
    assert second - first == pytest.approx(1 / rate)


def test_claim_takes_only_local_or_only_provider_jobs_when_asked(session: Session) -> None:
    outbox.enqueue(session, kind="test.noop", payload={}, idempotency_key="local")
    outbox.enqueue(session, kind="test.remote", payload={}, idempotency_key="remote")
    session.commit()
    [remote] = outbox.claim(session, worker="p", provider_jobs=True)
    [local] = outbox.claim(session, worker="l", provider_jobs=False)
    assert (remote.kind, local.kind) == ("test.remote", "test.noop")


PROVIDER_CALLS = {"now": 0, "most": 0}
PROVIDER_LOCK = threading.Lock()


@outbox.job_kind("test.slow_remote", provider="slowpay")
def _slow_remote(session: Session, job: outbox.JobContext) -> None:
    def call() -> None:
        with PROVIDER_LOCK:
            PROVIDER_CALLS["now"] += 1
            PROVIDER_CALLS["most"] = max(PROVIDER_CALLS["most"], PROVIDER_CALLS["now"])
        time.sleep(0.2)  # the provider answering
        with PROVIDER_LOCK:
            PROVIDER_CALLS["now"] -= 1
        CALLS[job.idempotency_key] += 1

    job.call_provider(call)


def test_drainer_runs_provider_jobs_side_by_side_in_its_provider_threads(engine: Engine) -> None:
    from backend.jobs.drainer import Drainer

    PROVIDER_CALLS.update(now=0, most=0)
    for key in [f"slow{n}" for n in range(8)] + [f"quick{n}" for n in range(5)]:
        CALLS.pop(key, None)
    with Session(engine) as session:
        for n in range(8):
            outbox.enqueue(session, kind="test.slow_remote", payload={}, idempotency_key=f"slow{n}")
        for n in range(5):
            outbox.enqueue(session, kind="test.noop", payload={}, idempotency_key=f"quick{n}")
        session.commit()
    drainer = Drainer(engine, threads=1, poll=0.05, provider_threads=4)
    drainer.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            with Session(engine) as session:  # a short transaction: SQLite's writers wait on it
                statuses = [(job.kind, job.status) for job in _jobs(session)]
            if {status for _, status in statuses} == {JobStatus.DONE}:
                break
            assert time.monotonic() < deadline, statuses
            time.sleep(0.05)
    finally:
        drainer.stop()
    assert PROVIDER_CALLS["most"] == 4  # four at a time, never more
    assert all(CALLS[f"slow{n}"] == 1 for n in range(8))
    assert all(CALLS[f"quick{n}"] == 1 for n in range(5))
    with Session(engine) as session:
        assert {job.attempts for job in _jobs(session)} == {1}


PREPARED: list[list[str]] = []
RAN_PREPARED: list[tuple[str, bool]] = []


def _prepare(session: Session, jobs: Sequence[outbox.JobContext]) -> list[str]:
    keys = [job.idempotency_key for job in jobs]
    PREPARED.append(keys)
    return keys


@outbox.job_kind("test.prepared", prepare=_prepare)
def _prepared(session: Session, job: outbox.JobContext) -> None:
    seen = any(job.idempotency_key in keys for keys in PREPARED)
    RAN_PREPARED.append((job.idempotency_key, seen))


def test_a_kinds_prepare_hook_sees_its_jobs_before_they_run(engine: Engine) -> None:
    PREPARED.clear()
    RAN_PREPARED.clear()
    with Session(engine) as session:
        for n in range(10):
            outbox.enqueue(session, kind="test.prepared", payload={}, idempotency_key=f"p{n}")
            if n % 3 == 0:
                outbox.enqueue(session, kind="test.noop", payload={}, idempotency_key=f"pn{n}")
        session.commit()

    report = Runner(engine, "w", prepare_ahead=4, commit_seconds=3600).run_once()

    assert (report.claimed, report.done) == (14, 14)
    assert sorted(key for key, _ in RAN_PREPARED) == sorted(f"p{n}" for n in range(10))
    assert all(seen for _, seen in RAN_PREPARED), RAN_PREPARED
    # Only its own kind's jobs, a few at a time (the next jobs, not the whole claim).
    assert sorted(key for keys in PREPARED for key in keys) == sorted(f"p{n}" for n in range(10))
    assert len(PREPARED) > 1 and all(len(keys) <= 4 for keys in PREPARED)


def test_retry_now_runs_a_waiting_job_at_once_for_owners_and_admins_only(
    session: Session, quick_circuit: object
) -> None:
    """Issue 11, point 4: "Retry now" on a waiting job (role checked in the service, the job
    found in the actor's workspace only); on an open breaker it goes as the probe."""
    ws, other = factories.workspace(session), factories.workspace(session, slug="other")
    admin, viewer = Actor(1, ws.id, Role.ADMIN), Actor(2, ws.id, Role.VIEWER)
    for key, workspace_id in (("mine", ws.id), ("theirs", other.id)):
        outbox.enqueue(
            session,
            kind="test.remote",
            payload={"fail": True},
            idempotency_key=key,
            workspace_id=workspace_id,
        )
    session.commit()
    now = utcnow()
    for job in outbox.claim(session, worker="w", now=now):
        outbox.fail(session, job, ProviderUnavailable("testpay answered 500"), worker="w", now=now)
        circuits.record(
            session, provider="testpay", workspace_id=job.workspace_id, ok=False, now=now
        )
    session.execute(
        OutboxJob.__table__.update().values(run_after=now + dt.timedelta(minutes=5))  # type: ignore[attr-defined]
    )
    for _ in range(2):
        circuits.record(session, provider="testpay", workspace_id=ws.id, ok=False, now=now)
    session.commit()
    mine, theirs = _jobs(session)
    assert session.get_one(ProviderCircuit, f"testpay:ws{ws.id}").state == "open"

    with pytest.raises(PermissionDenied):
        outbox_operators.retry_now(session, actor=viewer, job_id=mine.id)
    with pytest.raises(InvalidInput, match="no such job in this workspace"):
        outbox_operators.retry_now(session, actor=admin, job_id=theirs.id)
    said = outbox_operators.retry_now(session, actor=admin, job_id=mine.id)
    session.commit()
    assert "breaker is open" in said
    mine, theirs = _jobs(session)
    assert mine.run_after <= utcnow() < theirs.run_after
    # The breaker lets its probe through at the next claim: this job.
    assert [job.id for job in outbox.claim(session, worker="w")] == [mine.id]
    session.commit()
    actions = session.scalars(select(AuditLog.action).where(AuditLog.workspace_id == ws.id))
    assert list(actions) == ["jobs.retry_now"]
    with pytest.raises(InvalidInput, match="not waiting"):
        outbox_operators.retry_now(session, actor=admin, job_id=mine.id)


def test_job_errors_are_words_without_secrets_or_emails(session: Session) -> None:
    """Issue 11, point 4: a job row says the error in words, not an exception's class name,
    and never keeps a key or an e-mail address a provider quoted back."""
    outbox.enqueue(session, kind="test.flaky", payload={}, idempotency_key="w")
    session.commit()
    [job] = outbox.claim(session, worker="w")
    quoted = ProviderRejected(
        "Stripe refused: Invalid email address: ann@example.com (key sk_test_abc123XYZ)",
        status=400,
    )
    outbox.fail(session, job, quoted, worker="w")
    session.commit()
    [row] = _jobs(session)
    assert row.last_error == "Stripe refused: Invalid email address: [email] (key [secret])"


def test_the_breaker_keeps_a_scrubbed_error(engine: Engine) -> None:
    """A breaker's last error is shown on its workspace's pages (this one, the platform's, on
    none): it keeps the job's scrubbed words, never an address or a key a provider quoted."""
    with Session(engine) as session:
        outbox.enqueue(session, kind="test.remote", payload={"quote": True}, idempotency_key="q")
        session.commit()
    Runner(engine, "w").run_once()
    with Session(engine) as session:
        said = session.get_one(ProviderCircuit, "testpay:platform").last_error or ""
    assert "ann@example.com" not in said and "sk_test_abc123XYZ" not in said
    assert said == "testpay answered 500: no customer [email] ([secret])"
