"""Incidents: one alert per (workspace, rule, entity), recurrences counted, regressions reopened,
symptoms folded under an open breaker, auto-resolved after five quiet minutes, notices enqueued
once per notice and channel."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

import backend.jobs  # noqa: F401  (declares the alert delivery kinds)
from backend.platform import incident_notify, incidents
from models import (
    Alert,
    AlertEvent,
    AlertPriority,
    AlertState,
    Integration,
    IntegrationStatus,
    OutboxJob,
    utcnow,
)
from tests import factories

T0 = dt.datetime(2027, 1, 10, 9, 0, tzinfo=dt.UTC)


def _raise(session: Session, ws: int | None, **kw: object) -> incidents.Raised:
    args: dict[str, object] = dict(
        workspace_id=ws,
        rule="provider.failing",
        entity_type="provider",
        entity_id="stripe",
        message="Stripe is failing",
        priority=AlertPriority.HIGH,
        now=T0,
    )
    return incidents.raise_incident(session, **(args | kw))  # type: ignore[arg-type]


def _whats(session: Session, alert: Alert) -> list[str]:
    return list(
        session.scalars(
            select(AlertEvent.what).where(AlertEvent.alert_id == alert.id).order_by(AlertEvent.id)
        )
    )


def test_a_recurrence_bumps_the_count_of_one_incident_per_workspace(session: Session) -> None:
    a, b = factories.workspace(session, slug="a").id, factories.workspace(session, slug="b").id
    first = _raise(session, a)
    again = _raise(session, a, now=T0 + dt.timedelta(minutes=3), message="Stripe still failing")
    other = _raise(session, b)
    assert first.new and not again.new and other.new
    assert first.alert.id == again.alert.id != other.alert.id
    alert = again.alert
    assert (alert.count, alert.first_seen_at, alert.last_seen_at) == (
        2,
        T0,
        T0 + dt.timedelta(minutes=3),
    )
    assert alert.message == "Stripe still failing"
    assert _whats(session, alert) == ["raised", "notified", "recurred"]
    assert session.scalar(select(func.count()).select_from(Alert)) == 2
    # The platform's own incidents (no workspace) are grouped too.
    assert _raise(session, None).new and not _raise(session, None).new


def test_a_condition_seen_again_counts_only_after_it_had_cleared(session: Session) -> None:
    ws = factories.workspace(session).id
    alert = _raise(session, ws, occurrence=False).alert
    _raise(session, ws, occurrence=False)
    assert alert.count == 1
    incidents.settle(session, rule="provider.failing", firing=[], now=T0)
    assert alert.clear_since == T0
    _raise(session, ws, occurrence=False)
    assert alert.count == 2 and alert.clear_since is None


def test_clear_for_five_minutes_resolves_and_a_recurrence_reopens_it_regressed(
    session: Session,
) -> None:
    ws = factories.workspace(session).id
    alert = _raise(session, ws).alert
    firing = [(ws, "provider:stripe")]
    assert incidents.settle(session, rule="provider.failing", firing=firing, now=T0) == 0
    assert incidents.settle(session, rule="provider.failing", firing=[], now=T0) == 0
    four = T0 + dt.timedelta(minutes=4)
    assert incidents.settle(session, rule="provider.failing", firing=[], now=four) == 0
    assert alert.state is AlertState.OPEN
    five = T0 + dt.timedelta(minutes=5)
    assert incidents.settle(session, rule="provider.failing", firing=[], now=five) == 1
    assert alert.state is AlertState.RESOLVED and alert.resolved_at == five

    back = _raise(session, ws, now=T0 + dt.timedelta(hours=1))
    assert back.new and back.alert.id == alert.id
    assert back.alert.state is AlertState.OPEN and back.alert.regressed
    assert back.alert.count == 2
    assert _whats(session, alert)[-4:] == ["auto-resolved", "notified", "regressed", "notified"]
    assert session.scalar(select(func.count()).select_from(Alert)) == 1


def test_dead_jobs_and_lag_fold_into_the_open_breaker_incident(session: Session) -> None:
    ws = factories.workspace(session).id
    breaker = incidents.raise_incident(
        session,
        workspace_id=ws,
        rule=incidents.BREAKER_RULE,
        entity_type="provider",
        entity_id="stripe",
        message="Stripe's breaker is open",
        priority=AlertPriority.HIGH,
    ).alert
    folded = incidents.job_dead(session, ws, "stripe.create_invoice", "stripe", 6, "down")
    assert folded.alert.id == breaker.id and not folded.new and breaker.count == 2
    assert "folded" in _whats(session, breaker)
    # Another provider's dead jobs, or a breaker resolved, make their own incident.
    assert incidents.job_dead(session, ws, "slack.post", "slack", 6, "down").new
    incidents.resolve(session, breaker, who="scheduler", now=utcnow(), what="resolve")
    alone = incidents.job_dead(session, ws, "stripe.create_invoice", "stripe", 6, "down")
    assert alone.new and alone.alert.type == "job.dead"


def test_escalation_wakes_an_ignored_incident_but_not_one_ignored_for_ever(
    session: Session,
) -> None:
    ws = factories.workspace(session).id
    alert = _raise(session, ws, priority=AlertPriority.NORMAL).alert
    alert.state = AlertState.IGNORED
    _raise(session, ws, priority=AlertPriority.CRITICAL)
    assert alert.state is AlertState.OPEN and alert.priority is AlertPriority.CRITICAL
    assert alert.notified_count == 2  # opened, escalated

    other = _raise(session, ws, entity_id="slack", priority=AlertPriority.NORMAL).alert
    other.state, other.ignored_for_ever = AlertState.IGNORED, True
    _raise(session, ws, entity_id="slack", priority=AlertPriority.CRITICAL)
    assert other.state is AlertState.IGNORED and other.notified_count == 1


def _slack(session: Session, ws: int) -> None:
    session.add(
        Integration(
            workspace_id=ws, provider="slack", display_name="Slack", status=IntegrationStatus.ACTIVE
        )
    )
    session.flush()


def test_notices_are_jobs_once_per_notice_and_channel(session: Session) -> None:
    ws = factories.workspace(session).id
    _slack(session, ws)
    alert = _raise(session, ws).alert
    _raise(session, ws)  # a recurrence while open: no new notice
    keys = list(session.scalars(select(OutboxJob.idempotency_key)))
    assert keys == [f"alert:{alert.id}:1:slack"]
    # Four hours unacknowledged: a reminder; an acknowledged one is not reminded.
    assert incident_notify.remind(session, now=T0 + dt.timedelta(hours=3, minutes=59)) == 0
    assert incident_notify.remind(session, now=T0 + dt.timedelta(hours=4)) == 1
    alert.state = AlertState.ACKNOWLEDGED
    assert incident_notify.remind(session, now=T0 + dt.timedelta(hours=9)) == 0
    incidents.resolve(session, alert, who="scheduler", now=T0, what="resolve")
    job = session.scalars(select(OutboxJob).order_by(OutboxJob.id.desc())).first()
    assert job is not None and job.idempotency_key == f"alert:{alert.id}:3:slack"
    assert job.payload["reason"] == "resolved" and job.payload["text"].startswith("Resolved")


def test_concurrent_raisers_make_one_incident(engine: Engine) -> None:
    with Session(engine) as session:
        ws = factories.workspace(session).id
        session.commit()
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def raiser() -> None:
        try:
            start.wait()
            with Session(engine) as session:
                _raise(session, ws, now=utcnow())
                session.commit()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=raiser) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Session(engine) as session:
        (alert,) = session.scalars(select(Alert)).all()
        assert alert.count == 3


def test_many_new_incidents_on_one_connection(session: Session) -> None:
    """Past PostgreSQL's switch to a generic plan of the prepared insert (after five runs),
    its ON CONFLICT still finds the partial unique index (the lead form raised a new-lead alert
    a submission and failed from the sixth on)."""
    ws = factories.workspace(session, slug="many").id
    for n in range(12):
        for workspace_id in (ws, None):
            raised = incidents.raise_incident(
                session,
                workspace_id=workspace_id,
                rule="lead.new",
                entity_type="lead",
                entity_id=str(n),
                message=f"New lead {n}",
                who="test",
                now=T0,
            )
            assert raised.new
    assert session.scalar(select(func.count()).select_from(Alert)) == 24
