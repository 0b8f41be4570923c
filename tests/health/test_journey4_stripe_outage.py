"""Journey 4 of the product brief ("Something broke, on a busy evening") with Stripe, as issue 14's
tests ask: real processes, a real outage, the whole way from a failing call to one message in
Slack and back.

``test_a_stripe_outage_alerts_slack_once_and_recovers_by_itself``: the sandbox's Stripe outage
switch is on while an operator generates a show's invoices (the service the console's
"Generate all invoices" calls); three ``scheduler.py`` processes run on one PostgreSQL database,
with the time-driven settings made short (``HUB_ALERT_RULES_SECONDS``,
``HUB_ALERT_AUTO_RESOLVE_SECONDS``, ``HUB_BREAKER_OPEN_SECONDS``, ``HUB_BREAKER_MAX_OPEN_SECONDS``).
Within two minutes the workspace's Stripe breaker is open, one incident exists (not one per
scheduler, nor one per rule), one Slack message is in the sandbox's #alerts and the invoice jobs
wait (pending, not dead), and the Health page's Stripe tile says "major outage" and lists the
show's waiting invoices. Switched off, the queue drains by itself (each invoice made in Stripe
once), the incident resolves by itself and one "Resolved" message follows.

``test_acknowledge_stops_the_reminders_and_a_regression_notifies_once``: the lifecycle's two
remaining promises, in-process on both databases with a clock of its own, up to the messages
Slack shows: an acknowledged incident gets no four-hourly reminder, and a recurrence after its
resolve reopens it marked regressed with one message.

Already tested elsewhere, and not again here: three evaluators racing (threads) raise one
incident (tests/health/test_evaluate.py); the reminder and its stop by the acknowledged state
(test_evaluate.py, tests/platform/test_incidents.py); three workers draining one notice post
one message (tests/health/test_notify.py); every rule's raise, settle and regression
(tests/health/test_rules.py); jobs held behind an open breaker and drained after, with the
runner in-process (tests/jobs/test_reliability.py); the Health page during an outage
(tests/e2e/test_outage.py).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

import backend.jobs  # noqa: F401  (declares the job kinds the outbox rows name)
import backend.sandbox.slack as slack_emulator
import backend.sandbox.stripe as stripe_emulator
from backend.connections import credentials
from backend.health import alert_actions, evaluate, rules, tiles
from backend.invoicing import service as invoicing
from backend.jobs.runner import Runner
from backend.platform.actors import Actor
from models import (
    Alert,
    AlertPriority,
    AlertState,
    Integration,
    IntegrationStatus,
    Invoice,
    InvoiceStatus,
    JobStatus,
    OutboxJob,
    ProviderCircuit,
    Role,
    SchedulerHeartbeat,
    Workspace,
)
from tests import factories
from tests.sandbox.stripe_support import client, new_account
from tests.support.hub_env import apply, connect_stripe
from tests.support.processes import env_for, running
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox
from tests.support.shows import make_show

BUYERS = 24
SCHEDULERS = 3
# The time-driven settings, short: an evaluation every 2 s (instead of a minute), a breaker
# open 1 s then 2 s, 3 s at most (instead of 30 s up to 10 min), resolved after 10 clear
# seconds (instead of 5 minutes).
RULES_SECONDS = 2
AUTO_RESOLVE_SECONDS = 10
FAST = {
    "HUB_ALERT_RULES_SECONDS": str(RULES_SECONDS),
    "HUB_ALERT_AUTO_RESOLVE_SECONDS": str(AUTO_RESOLVE_SECONDS),
    "HUB_BREAKER_OPEN_SECONDS": "1",
    "HUB_BREAKER_MAX_OPEN_SECONDS": "3",
    "HUB_HEARTBEAT_SECONDS": "2",
    # Three processes on two cores: fewer threads each than production's 2 + 8.
    "HUB_OUTBOX_THREADS": "1",
    "HUB_OUTBOX_PROVIDER_THREADS": "4",
    "HUB_DATABASE_POOL_SIZE": "4",
}


@dataclass
class Evening:
    """A live seller's workspace with Stripe and Slack connected, and its ended show."""

    engine: Engine
    sandbox: RunningSandbox
    stripe_key: str
    slack_team_id: str
    workspace_id: int
    show_id: int
    admin: Actor

    def slack(self) -> list[dict[str, Any]]:
        """The messages the workspace's bot posted in #alerts, oldest first."""
        response = httpx.get(
            f"{self.sandbox.url}/slack/_sandbox/messages",
            params={"team": self.slack_team_id, "channel": "#alerts"},
            timeout=10,
        )
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    def unresolved(self) -> list[Alert]:
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(Alert)
                    .where(
                        Alert.workspace_id == self.workspace_id,
                        Alert.state != AlertState.RESOLVED,
                    )
                    .order_by(Alert.id)
                )
            )

    def breaker(self) -> str | None:
        with Session(self.engine) as session:
            return session.scalar(
                select(ProviderCircuit.state).where(
                    ProviderCircuit.key == f"stripe:ws{self.workspace_id}"
                )
            )

    def invoice_jobs(self) -> dict[JobStatus, int]:
        with Session(self.engine) as session:
            return dict(
                session.execute(
                    select(OutboxJob.status, func.count())
                    .where(OutboxJob.kind == invoicing.CREATE_KIND)
                    .group_by(OutboxJob.status)
                ).all()
            )

    def stripe_invoices(self) -> list[str]:
        """Our invoice id of each invoice the Stripe account holds (one each, if once)."""
        sdk = client(self.sandbox.url, self.stripe_key)
        listed = sdk.v1.invoices.list({"limit": 100}).auto_paging_iter()
        return sorted(str(i.metadata["hub_invoice_id"]) for i in listed)


def _connect_slack(session: Session, workspace_id: int, token: str) -> None:
    row = Integration(
        workspace_id=workspace_id,
        provider="slack",
        display_name="Slack",
        status=IntegrationStatus.ACTIVE,
        settings={"alert_channel": "#alerts"},
    )
    session.add(row)
    session.flush()
    credentials.seal(row, {"bot_token": token})


def _evening(
    make_sandbox: MakeSandbox,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> Evening:
    sandbox = make_sandbox(providers=[stripe_emulator, slack_emulator])
    db_url = engine.url.render_as_string(hide_password=False)
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    key = new_account(sandbox.url)["secret_key"]
    bot = httpx.post(
        f"{sandbox.url}/slack/_sandbox/tokens", json={"team": "Lakeside Live"}, timeout=10
    ).json()
    workspace_id = connect_stripe(engine, secret_key=key, slug="lakeside-live")
    with Session(engine) as session:
        ws = session.get_one(Workspace, workspace_id)
        factories.member(session, ws, email="owner@lakeside.example", role=Role.OWNER)
        admin = factories.member(session, ws, email="ops@lakeside.example", role=Role.ADMIN)
        _connect_slack(session, workspace_id, bot["token"])
        session.commit()
        admin_id = admin.id
    show = make_show(engine, workspace_id=workspace_id, buyers=BUYERS, title="Spring Drop")
    return Evening(
        engine,
        sandbox,
        key,
        bot["team_id"],
        workspace_id,
        show.id,
        Actor(operator_id=admin_id, workspace_id=workspace_id, role=Role.ADMIN),
    )


def _until(
    what: str, check: Callable[[], bool], *, timeout: float, logs: list[Callable[[], str]]
) -> float:
    """Wait until ``check()``; returns the seconds it took. Fails saying what it waited for,
    with the end of each scheduler's log."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            tails = "\n".join(
                f"--- scheduler {n} ---\n{log()[-3000:]}" for n, log in enumerate(logs, 1)
            )
            raise AssertionError(f"not within {timeout:.0f} s: {what}\n{tails}")
        time.sleep(0.25)
    return time.monotonic() - started


@pytest.fixture
def schedulers(
    pg_engine: Engine, hub_env: dict[str, str]
) -> Iterator[Callable[[], list[Callable[[], str]]]]:
    """Starts the three scheduler processes when called (the world is made first); each is
    stopped at the end of the test, whatever happens (``running`` kills its process group)."""
    with ExitStack() as stack:

        def start() -> list[Callable[[], str]]:
            db_url = pg_engine.url.render_as_string(hide_password=False)
            env = env_for(
                db_url, **{k: v for k, v in hub_env.items() if k != "HUB_DATABASE_URL"}, **FAST
            )
            return [
                stack.enter_context(running([sys.executable, "scheduler.py"], env=env))
                for _ in range(SCHEDULERS)
            ]

        yield start


def test_a_stripe_outage_alerts_slack_once_and_recovers_by_itself(
    make_sandbox: MakeSandbox,
    pg_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
    schedulers: Callable[[], list[Callable[[], str]]],
) -> None:
    evening = _evening(make_sandbox, pg_engine, monkeypatch, hub_env)
    logs = schedulers()

    def heartbeats() -> int:
        with Session(pg_engine) as session:
            return int(session.scalar(select(func.count()).select_from(SchedulerHeartbeat)) or 0)

    _until("three schedulers beat", lambda: heartbeats() == SCHEDULERS, timeout=60, logs=logs)

    # Stripe goes down; the operator clicks "Generate all invoices" (the console's service call).
    evening.sandbox.switch(stripe={"outage": "errors"})
    with Session(pg_engine) as session:
        queued = invoicing.generate_all(session, actor=evening.admin, show_id=evening.show_id)
        session.commit()
    assert queued == BUYERS

    def alerted() -> bool:
        return evening.breaker() == "open" and len(evening.slack()) >= 1

    took = _until("breaker open and a message in Slack", alerted, timeout=120, logs=logs)
    print(f"\noutage seen and told in {took:.1f} s")
    # Several evaluations of each scheduler later, still one incident and one message.
    time.sleep(4 * RULES_SECONDS)
    unresolved = evening.unresolved()
    assert len(unresolved) == 1, [(a.type, a.entity_key, a.priority.value) for a in unresolved]
    incident = unresolved[0]
    assert incident.entity_key == "provider:stripe"
    assert incident.type in (rules.BREAKER_OPEN, rules.PROVIDER_FAILING)
    assert incident.priority in (AlertPriority.CRITICAL, AlertPriority.HIGH)
    messages = evening.slack()
    assert len(messages) == 1, [m["text"] for m in messages]
    message = messages[0]
    assert message["text"].startswith(f"New alert [{incident.priority.value}] {incident.type}")
    assert f"alert #{incident.id}" in message["text"]
    assert message["metadata"]["event_payload"] == {"key": f"alert:{incident.id}:1:slack"}
    # The invoices wait: none dead, none made, none in Error; the breaker's probes (one each
    # open period) used no job's attempts, only the first failures did.
    assert set(evening.invoice_jobs()) <= {JobStatus.PENDING, JobStatus.RUNNING}
    with Session(pg_engine) as session:
        assert set(session.scalars(select(Invoice.status))) == {InvoiceStatus.DRAFT}
        attempts = session.scalars(
            select(OutboxJob.attempts).where(OutboxJob.kind == invoicing.CREATE_KIND)
        ).all()
    assert max(attempts) <= 1, sorted(attempts)
    # The Health page's Stripe tile, as the owner sees it: major outage, and what waits on it.
    with Session(pg_engine) as session:
        (stripe_tile,) = [
            t
            for t in tiles.provider_tiles(session, workspace_id=evening.workspace_id)
            if t.provider == "stripe"
        ]
    assert stripe_tile.status == tiles.MAJOR_OUTAGE
    waiting = [w.text for w in stripe_tile.waiting]
    assert f"{BUYERS} invoices of show Spring Drop" in waiting, waiting

    # Stripe is back: nobody touches anything.
    evening.sandbox.switch(stripe={"outage": "none"})

    def drained() -> bool:
        return evening.invoice_jobs() == {JobStatus.DONE: BUYERS}

    took = _until("the invoice queue drains by itself", drained, timeout=90, logs=logs)
    print(f"queue drained {took:.1f} s after Stripe came back")
    with Session(pg_engine) as session:
        ours = sorted(str(i) for i in session.scalars(select(Invoice.id)))
        assert set(session.scalars(select(Invoice.status))) == {InvoiceStatus.SENT}
    assert evening.stripe_invoices() == ours  # each made once in Stripe
    assert evening.breaker() == "closed"

    def resolved() -> bool:
        return not evening.unresolved() and len(evening.slack()) >= 2

    took = _until("the incident resolves by itself, and says so", resolved, timeout=60, logs=logs)
    print(f"resolved and told {took:.1f} s after the drain")
    time.sleep(4 * RULES_SECONDS)  # nothing more comes
    with Session(pg_engine) as session:
        incident = session.get_one(Alert, incident.id)
        assert incident.state is AlertState.RESOLVED and not incident.regressed
        assert incident.notified_count == 2
        others = session.scalars(
            select(Alert.type).where(
                Alert.workspace_id == evening.workspace_id, Alert.id != incident.id
            )
        ).all()
    assert others == []
    opened, done = evening.slack()
    assert opened == message
    assert done["text"].startswith(f"Resolved [{incident.priority.value}] {incident.type}")
    assert done["metadata"]["event_payload"] == {"key": f"alert:{incident.id}:2:slack"}
    # All three ran the whole time (none crashed, leaving the work to the others).
    alive = [log.process.poll() is None for log in logs]  # type: ignore[attr-defined]
    assert alive == [True] * SCHEDULERS


# -- the lifecycle, in-process ---------------------------------------------------------------

T0 = dt.datetime(2025, 3, 1, 20, 0, tzinfo=dt.UTC)  # before the wall clock: see test_evaluate


def _breaker(engine: Engine, workspace_id: int, state: str) -> None:
    with Session(engine) as session:
        row = session.get(ProviderCircuit, f"stripe:ws{workspace_id}")
        if row is None:
            row = ProviderCircuit(
                key=f"stripe:ws{workspace_id}", provider="stripe", workspace_id=workspace_id
            )
            session.add(row)
        row.state, row.last_error = state, "Stripe answered 500"
        session.commit()


def _evaluate(engine: Engine, now: dt.datetime) -> evaluate.Report:
    with Session(engine) as session:
        report = evaluate.evaluate(session, now=now)
        session.commit()
    return report


def test_acknowledge_stops_the_reminders_and_a_regression_notifies_once(
    make_sandbox: MakeSandbox,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> None:
    sandbox = make_sandbox(providers=[slack_emulator])
    db_url = engine.url.render_as_string(hide_password=False)
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    bot = httpx.post(f"{sandbox.url}/slack/_sandbox/tokens", json={}, timeout=10).json()
    with Session(engine) as session:
        ws = factories.workspace(session)
        admin = factories.member(session, ws, email="ops@lakeside.example", role=Role.ADMIN)
        _connect_slack(session, ws.id, bot["token"])
        session.commit()
        workspace_id = ws.id
        actor = Actor(operator_id=admin.id, workspace_id=ws.id, role=Role.ADMIN)
    runner = Runner(engine, "test-worker", batch=10)

    def told() -> list[str]:
        """What Slack shows, after the outbox delivered what is due."""
        report = runner.run_once()
        assert report.dead == report.retried == 0, report.errors
        listed = httpx.get(f"{sandbox.url}/slack/_sandbox/messages", timeout=10).json()
        return [m["text"].split(" [", 1)[0] for m in listed["messages"]]

    hours = dt.timedelta(hours=1)
    _breaker(engine, workspace_id, "open")
    assert _evaluate(engine, T0).raised == 1
    assert told() == ["New alert"]
    # Four hours unacknowledged: reminded once.
    assert _evaluate(engine, T0 + 4 * hours).reminded == 1
    assert _evaluate(engine, T0 + 4 * hours + dt.timedelta(minutes=1)).reminded == 0
    assert told() == ["New alert", "Alert still unacknowledged"]

    with Session(engine) as session:
        alert_id = session.scalars(select(Alert.id)).one()
        alert_actions.acknowledge(session, actor=actor, alert_id=alert_id)
        session.commit()
    for later in (8, 12, 16, 20):  # still happening, but someone is on it
        assert _evaluate(engine, T0 + later * hours).reminded == 0
    assert told() == ["New alert", "Alert still unacknowledged"]

    # Fixed: clear for five minutes, resolved, and said so.
    _breaker(engine, workspace_id, "closed")
    _evaluate(engine, T0 + 21 * hours)
    _evaluate(engine, T0 + 21 * hours + dt.timedelta(minutes=5))
    assert told()[-1] == "Resolved"

    # It happens again: the same incident reopens, regressed, open (not acknowledged any
    # more), and one message says so however many evaluations see it.
    _breaker(engine, workspace_id, "open")
    assert _evaluate(engine, T0 + 22 * hours).raised == 1
    for minute in range(1, 4):
        assert _evaluate(engine, T0 + 22 * hours + dt.timedelta(minutes=minute)).raised == 0
    assert told() == [
        "New alert",
        "Alert still unacknowledged",
        "Resolved",
        "Alert back after it was resolved",
    ]
    with Session(engine) as session:
        (alert,) = session.scalars(select(Alert)).all()
        assert (alert.id, alert.state, alert.regressed) == (alert_id, AlertState.OPEN, True)
        assert alert.acknowledged_at is None and alert.notified_count == 4
