"""The minute's evaluation: once under concurrent schedulers, the four-hour reminder, the
settling of reconciliation's incidents, and the platform's "scheduler stopped" incident."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

import backend.jobs  # noqa: F401  (declares the alert delivery kinds)
from backend.health import evaluate, rules
from backend.platform import heartbeat, incidents
from models import (
    Alert,
    AlertPriority,
    AlertState,
    Integration,
    IntegrationStatus,
    Invoice,
    InvoiceDiscrepancy,
    InvoiceStatus,
    OutboxJob,
    ProviderCircuit,
    Show,
    ShowStatus,
)
from tests import factories

# Before the wall clock: the notices' outbox jobs are queued at the real time, so to this
# evaluation they are not yet due (not lag of their own).
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def _channels(session: Session, ws: int) -> None:
    for provider in ("slack", "sendgrid"):
        session.add(
            Integration(
                workspace_id=ws,
                provider=provider,
                display_name=provider,
                status=IntegrationStatus.ACTIVE,
            )
        )


def _open_breaker(session: Session, ws: int) -> None:
    session.add(
        ProviderCircuit(
            key=f"stripe:ws{ws}",
            provider="stripe",
            workspace_id=ws,
            state="open",
            last_error="Stripe is unavailable",
        )
    )


def _notices(session: Session) -> list[tuple[str, str]]:
    return sorted(
        (job.kind, job.idempotency_key)
        for job in session.scalars(select(OutboxJob).where(OutboxJob.kind.like("alerts.%")))
    )


def test_three_concurrent_evaluators_raise_once_and_notify_once_per_channel(
    pg_engine: Engine,
) -> None:
    with Session(pg_engine) as session:
        ws = factories.workspace(session).id
        _channels(session, ws)
        _open_breaker(session, ws)
        session.commit()
    start = threading.Barrier(3)
    reports: list[evaluate.Report] = []
    errors: list[BaseException] = []

    def evaluator() -> None:
        try:
            with Session(pg_engine) as session:
                session.execute(text("SELECT 1"))  # the connection is open before the race
                start.wait()
                reports.append(evaluate.evaluate(session, now=T0))
                session.commit()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=evaluator) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # However the three interleaved (skipped the tick, or ran after the winner committed),
    # one incident, raised once, and one notice per channel.
    assert sum(r.raised for r in reports) == 1
    with Session(pg_engine) as session:
        (alert,) = session.scalars(select(Alert)).all()
        assert (alert.count, alert.notified_count) == (1, 1)
        assert _notices(session) == [
            ("alerts.email", f"alert:{alert.id}:1:email"),
            ("alerts.slack", f"alert:{alert.id}:1:slack"),
        ]


def test_an_evaluator_that_does_not_get_the_lock_skips_the_tick(pg_engine: Engine) -> None:
    with Session(pg_engine) as holder, Session(pg_engine) as other:
        assert evaluate.evaluate(holder, now=T0).evaluated  # holds the lock until it ends
        assert not evaluate.evaluate(other, now=T0).evaluated
        holder.commit()
        assert evaluate.evaluate(other, now=T0 + MINUTE).evaluated


def test_an_unacknowledged_incident_is_reminded_every_four_hours(session: Session) -> None:
    ws = factories.workspace(session).id
    _channels(session, ws)
    _open_breaker(session, ws)
    session.commit()
    evaluate.evaluate(session, now=T0)
    session.commit()
    hours = dt.timedelta(hours=4)
    assert evaluate.evaluate(session, now=T0 + hours - MINUTE).reminded == 0
    assert evaluate.evaluate(session, now=T0 + hours).reminded == 1
    assert evaluate.evaluate(session, now=T0 + hours + MINUTE).reminded == 0  # once
    session.commit()
    alert = session.scalars(select(Alert)).one()
    assert alert.notified_count == 2
    assert [k for _, k in _notices(session)].count(f"alert:{alert.id}:2:slack") == 1
    # Acknowledged: no more reminders.
    alert.state, alert.acknowledged_at = AlertState.ACKNOWLEDGED, T0 + hours
    session.commit()
    assert evaluate.evaluate(session, now=T0 + 2 * hours + MINUTE).reminded == 0


def test_reconciliation_incidents_settle_once_their_differences_are_fixed(
    session: Session,
) -> None:
    ws = factories.workspace(session).id
    show = Show(workspace_id=ws, title="Spring drop", status=ShowStatus.ENDED)
    session.add(show)
    session.flush()
    invoice = Invoice(
        workspace_id=ws,
        show_id=show.id,
        provider="stripe",
        buyer_handle="ann",
        buyer_platform_id="p1",
        status=InvoiceStatus.SENT,
    )
    session.add(invoice)
    session.flush()
    difference = InvoiceDiscrepancy(
        workspace_id=ws,
        show_id=show.id,
        invoice_id=invoice.id,
        field="amount",
        ours="1",
        theirs="2",
    )
    session.add(difference)
    incidents.raise_incident(
        session,
        workspace_id=ws,
        rule=evaluate.RECONCILIATION_RULE,
        entity_type="show",
        entity_id=str(show.id),
        message="Reconciliation found 1 difference",
        now=T0,
    )
    session.commit()
    evaluate.evaluate(session, now=T0 + MINUTE)
    evaluate.evaluate(session, now=T0 + 10 * MINUTE)
    session.commit()
    alert = session.scalars(select(Alert)).one()
    assert alert.state is AlertState.OPEN and alert.clear_since is None  # still different
    difference.resolved_at = T0 + 10 * MINUTE
    session.commit()
    evaluate.evaluate(session, now=T0 + 11 * MINUTE)
    evaluate.evaluate(session, now=T0 + 16 * MINUTE)
    session.commit()
    session.refresh(alert)
    assert alert.state is AlertState.RESOLVED


def test_the_scheduler_stopped_incident_is_the_platforms_and_settles_when_it_beats(
    session: Session,
) -> None:
    factories.workspace(session)
    assert not evaluate.watch_scheduler(session, now=T0)  # never beat: an external cron
    heartbeat.beat(session, instance="sched-1", now=T0)
    session.commit()
    assert not evaluate.watch_scheduler(session, now=T0 + dt.timedelta(seconds=60))
    assert session.scalar(select(func.count()).select_from(Alert)) == 0
    assert evaluate.watch_scheduler(session, now=T0 + dt.timedelta(seconds=61))
    session.commit()
    alert = session.scalars(select(Alert)).one()
    assert (alert.workspace_id, alert.type, alert.priority) == (
        None,
        rules.SCHEDULER_STOPPED,
        AlertPriority.CRITICAL,
    )
    assert "No scheduler has run for 61 seconds" in alert.message
    # The scheduler's own evaluation never settles it: only the sidecar knows.
    evaluate.evaluate(session, now=T0 + 10 * MINUTE)
    session.commit()
    session.refresh(alert)
    assert alert.state is AlertState.OPEN and alert.clear_since is None
    heartbeat.beat(session, instance="sched-1", now=T0 + 10 * MINUTE)
    assert not evaluate.watch_scheduler(session, now=T0 + 10 * MINUTE)
    heartbeat.beat(session, instance="sched-1", now=T0 + 15 * MINUTE)
    assert not evaluate.watch_scheduler(session, now=T0 + 15 * MINUTE)
    session.commit()
    session.refresh(alert)
    assert alert.state is AlertState.RESOLVED
