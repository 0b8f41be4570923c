"""A scheduler process SIGKILLed mid-send, twice, then one that lives: every message is mailed
at most once (checked in the sandbox's mailbox), and the doubt errs toward not sending
(docs/DESIGN.md, "Never twice"):

1. SendGrid takes the first request of 1,000 and answers late; the scheduler is killed while it
   waits. The messages stay ``unknown``, never resent (SendGrid's events would settle them).
2. SendGrid hangs on the next request and never takes it; the scheduler is killed while it
   hangs. Those 1,000 are not mailed, not resent, and stay ``unknown`` with the crash's reason.
3. A new scheduler, once the dead ones' leases ran out, sends the rest.

The schedulers are real ``python scheduler.py`` processes on a PostgreSQL database, sending
through the SendGrid SDK to the sandbox."""

from __future__ import annotations

import collections
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

import backend.sandbox.sendgrid as sendgrid_emulator
from backend.email import send
from backend.sandbox.sendgrid import routes as sendgrid_routes
from models import EmailStatus, JobStatus, OutboxJob
from tests.email.support import (
    SIDECAR,
    mailbox,
    messages,
    queue,
    workspace_with_sendgrid,
)
from tests.support.hub_env import apply
from tests.support.processes import env_for, running
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox

COUNT = 2_100  # three requests: 1,000, 1,000 and 100
# How long SendGrid holds the first request's answer, and hangs on the second: time enough
# for the test to see the request in flight and kill the scheduler.
HOLD_SECONDS = 4.0
SCHEDULER = [sys.executable, "scheduler.py"]


def _sendgrid(sandbox: RunningSandbox) -> dict[str, Any]:
    answered = httpx.get(f"{sandbox.url}/_sandbox/requests", timeout=10).json()
    return dict(answered.get("sendgrid", {}))


def _in_flight(sandbox: RunningSandbox) -> int:
    return int(_sendgrid(sandbox).get("in_flight", 0))


def _accepted(sandbox: RunningSandbox) -> int:
    """How many messages the sandbox holds, without copying them (polled often)."""
    return len(sandbox.ctx.store.lookup("sendgrid", "messages") or {})


def _mailed(sandbox: RunningSandbox) -> collections.Counter[int]:
    """How often each of our messages is in the sandbox's mailbox."""
    return collections.Counter(int(m["custom_args"]["hub_message_id"]) for m in mailbox(sandbox))


def _wait(
    condition: Callable[[], object], what: str, output: Callable[[], str], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout}s for {what}:\n{output()[-3000:]}")
        time.sleep(0.2)


def _kill(output: Callable[[], str]) -> None:
    process = output.process  # type: ignore[attr-defined]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _busy(engine: Engine) -> int:
    """Jobs waiting or running (a dead scheduler's are running until their lease runs out)."""
    with Session(engine) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(OutboxJob)
                .where(OutboxJob.status.in_([JobStatus.PENDING, JobStatus.RUNNING]))
            )
            or 0
        )


def test_schedulers_killed_mid_send_mail_every_message_at_most_once(
    make_sandbox: MakeSandbox,
    pg_engine: Engine,
    hub_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL only, as in production: on SQLite three scheduler processes and the test
    share one write lock over 2,000-message batches, and on a loaded machine a reader waits
    past its busy timeout."""
    engine = pg_engine
    db_url = engine.url.render_as_string(hide_password=False)
    sandbox = make_sandbox(providers=[sendgrid_emulator])
    hub_env["HUB_PUBLIC_SIDECAR_URL"] = SIDECAR
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    # The sandbox keeps its newest 2,000 messages; this test reads back all of them.
    monkeypatch.setattr(sendgrid_routes, "MAX_MESSAGES", 10 * COUNT)
    ws = workspace_with_sendgrid(engine, sandbox)
    ids = set(queue(engine, ws, [f"person{n}@example.com" for n in range(COUNT)]))
    env = env_for(
        db_url,
        **{k: v for k, v in hub_env.items() if k != "HUB_DATABASE_URL"},
        # One send at a time, so that exactly one request is in flight at a kill.
        HUB_OUTBOX_PROVIDER_THREADS="1",
        # A dead scheduler's jobs are taken again soon after; small batches of local jobs
        # finish well within that short lease.
        HUB_OUTBOX_LEASE_SECONDS="5",
        HUB_OUTBOX_BATCH="50",
        HUB_OUTBOX_RESCUE_SECONDS="1",
        HUB_HEARTBEAT_SECONDS="60",
    )
    # 1. SendGrid takes the first request and holds its answer: killed while waiting.
    sandbox.switch(sendgrid={"late_answer_seconds": HOLD_SECONDS})
    with running(SCHEDULER, env=env) as output:
        _wait(lambda: _in_flight(sandbox) and _accepted(sandbox), "a request held", output)
        _kill(output)
    _wait(lambda: _in_flight(sandbox) == 0, "the late answer", output)
    held = set(_mailed(sandbox))
    assert len(held) == 1000
    status = {m.id: m.status for m in messages(engine, ws)}
    assert {status[i] for i in held} == {EmailStatus.UNKNOWN}
    assert collections.Counter(status.values()) == {
        EmailStatus.UNKNOWN: 1000,
        EmailStatus.QUEUED: COUNT - 1000,
    }

    # 2. SendGrid hangs on the next request and never takes it: killed while it hangs.
    sandbox.switch(
        sendgrid={
            "late_answer_seconds": 0,
            "outage": "timeouts",
            "hang_seconds": HOLD_SECONDS,
        }
    )
    with running(SCHEDULER, env=env) as output:
        _wait(lambda: _in_flight(sandbox), "a request hanging", output)
        _kill(output)
    _wait(lambda: _in_flight(sandbox) == 0, "the hanging request's end", output)
    assert set(_mailed(sandbox)) == held  # the hanging request left nothing
    sandbox.switch(sendgrid={"outage": "none"})

    # 3. A scheduler that lives: the dead ones' jobs run again once their leases ran out, and
    # the rest is sent.
    with running(SCHEDULER, env=env) as output:
        _wait(lambda: _busy(engine) == 0, "every job done", output, timeout=120)

    mailed = _mailed(sandbox)
    assert set(mailed.values()) == {1}  # none twice
    assert set(mailed) <= ids and held <= set(mailed)
    rows = {m.id: m for m in messages(engine, ws)}
    never_taken = ids - set(mailed)
    last = set(mailed) - held
    # Exact: the first request's 1,000 and the last 100 mailed, the hung 1,000 not.
    assert (len(held), len(last), len(never_taken)) == (1000, COUNT - 2000, 1000)
    # The answered request: sent, with SendGrid's X-Message-Id.
    assert {rows[i].status for i in last} == {EmailStatus.SENT}
    assert {rows[i].sendgrid_message_id for i in last} == {mailbox(sandbox)[-1]["x_message_id"]}
    # The two requests whose answer no one recorded, taken by SendGrid or not: ``unknown``,
    # never sent again, saying why (SendGrid's events settle the first: tests/email/
    # test_events.py), for an operator to look at.
    for doubt in (held, never_taken):
        assert {rows[i].status for i in doubt} == {EmailStatus.UNKNOWN}
        assert {rows[i].failure_reason for i in doubt} == {send.CRASH_REASON}
    # Three requests reached SendGrid: two taken, the hung one answered 504 to no one.
    assert _sendgrid(sandbox)["by_status"] == {"202": 2, "504": 1}
