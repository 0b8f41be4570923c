"""The alert rules, each through the minute's evaluation: a condition present raises one
incident with its severity and words, five clear minutes resolve it, and its return reopens it
regressed. Then the thresholds and what is not a condition (a paused kind, a breaker's
backlog, another workspace's failures)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

import backend.jobs  # noqa: F401  (declares the job kinds the outbox rows name)
from backend.connections import facts, google_tokens
from backend.health import rules
from backend.health.evaluate import evaluate
from models import (
    Alert,
    AlertEvent,
    AlertPriority,
    AlertState,
    CallMinute,
    InboundEvent,
    InboundStatus,
    Integration,
    IntegrationLog,
    IntegrationStatus,
    JobKindPause,
    JobStatus,
    OutboxJob,
    ProviderCircuit,
    Show,
    ShowStatus,
)
from tests import factories
from tests.support.calls import add_calls, call

T0 = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
_n = itertools.count()


def _calls(session: Session, ws: int, at: dt.datetime, ok: int, failed: int) -> None:
    outcomes = ["ok"] * ok + ["unavailable"] * failed
    add_calls(session, *(call(ws, "stripe", outcome=o, operation="x", at=at) for o in outcomes))


def _forget_calls(session: Session) -> None:
    session.execute(delete(IntegrationLog))
    session.execute(delete(CallMinute))


def _job(
    session: Session,
    ws: int | None,
    *,
    status: JobStatus,
    run_after: dt.datetime,
    kind: str = "alerts.slack",
    provider: str | None = "slack",
    error: str | None = None,
) -> OutboxJob:
    job = OutboxJob(
        workspace_id=ws,
        kind=kind,
        provider=provider,
        circuit_key=f"{provider}:ws{ws}" if provider else None,
        payload={},
        idempotency_key=f"test:{next(_n)}",
        status=status,
        run_after=run_after,
        fair_at=run_after,
        last_error=error,
    )
    session.add(job)
    return job


def _breaker(session: Session, ws: int, state: str, at: dt.datetime) -> None:
    row = session.get(ProviderCircuit, f"stripe:ws{ws}")
    if row is None:
        row = ProviderCircuit(key=f"stripe:ws{ws}", provider="stripe", workspace_id=ws)
        session.add(row)
    row.state, row.last_error, row.opened_until = state, "Stripe is unavailable", at + MINUTE


def _google(session: Session, ws: int) -> Integration:
    row = session.scalars(select(Integration).where(Integration.workspace_id == ws)).first()
    if row is None:
        row = Integration(
            workspace_id=ws,
            provider="google_drive",
            display_name="Google Drive",
            status=IntegrationStatus.ACTIVE,
            connected_at=T0 - dt.timedelta(days=3),
        )
        session.add(row)
        session.flush()
    return row


def _refresh(session: Session, ws: int, at: dt.datetime, *, ok: bool) -> None:
    row = _google(session, ws)
    session.add(
        IntegrationLog(
            workspace_id=ws,
            integration_id=row.id,
            provider="google_drive",
            operation="oauth_refresh",
            outcome="ok" if ok else "unavailable",
            error=None if ok else "Google did not answer (503)",
            at=at,
        )
    )


def _grant_ends(session: Session, ws: int, at: dt.datetime, *, after: dt.timedelta) -> None:
    """The workspace's Google Drive grant ends ``after`` from ``at``, as a connect stores it."""
    row = _google(session, ws)
    ends = (at + after).isoformat()
    row.settings = facts.replaced({"root_folder_name": "Hub"}, {google_tokens.REFRESH_EXPIRY: ends})


@dataclass(frozen=True)
class Case:
    rule: str
    priority: AlertPriority
    words: tuple[str, ...]
    make: Callable[[Session, int, dt.datetime], None]
    clear: Callable[[Session, int, dt.datetime], None]


CASES = [
    Case(
        rules.PROVIDER_FAILING,
        AlertPriority.CRITICAL,
        ("3 of 5 calls to Stripe failed", "waits in the queue"),
        lambda s, ws, at: _calls(s, ws, at, ok=2, failed=3),
        # The failures age out of the window (the next make is a fresh 15 minutes).
        lambda s, ws, at: _forget_calls(s),
    ),
    Case(
        rules.BREAKER_OPEN,
        AlertPriority.HIGH,
        ("Calls to stripe kept failing", "Stripe is unavailable", "stopped calling it"),
        lambda s, ws, at: _breaker(s, ws, "open", at),
        lambda s, ws, at: _breaker(s, ws, "closed", at),
    ),
    Case(
        rules.JOB_DEAD,
        AlertPriority.HIGH,
        ("1 alerts.slack job failed and stopped", "channel_not_found", "replay them from Jobs"),
        lambda s, ws, at: (
            _job(s, ws, status=JobStatus.DEAD, run_after=at, error="channel_not_found"),
            None,
        )[1],
        lambda s, ws, at: (
            s.execute(
                update(OutboxJob).where(OutboxJob.status == JobStatus.DEAD).values(status="done")
            )
            and None
        ),
    ),
    Case(
        rules.INBOX_LAGGING,
        AlertPriority.HIGH,
        ("1 stripe webhook arrived but is not applied yet", "the oldest 2 minutes ago"),
        lambda s, ws, at: s.add(
            InboundEvent(
                provider="stripe",
                external_id=f"evt_{next(_n)}",
                event_type="invoice.paid",
                workspace_id=ws,
                payload={},
                received_at=at - 2 * MINUTE,
            )
        ),
        lambda s, ws, at: (
            s.execute(update(InboundEvent).values(status=InboundStatus.HANDLED, handled_at=at))
            and None
        ),
    ),
    Case(
        rules.OUTBOX_LAGGING,
        AlertPriority.HIGH,
        ("1 invoices.local job waited past its time", "due 10 minutes ago"),
        lambda s, ws, at: (
            _job(
                s,
                ws,
                status=JobStatus.PENDING,
                run_after=at - 10 * MINUTE,
                kind="invoices.local",
                provider=None,
            ),
            None,
        )[1],
        lambda s, ws, at: s.execute(update(OutboxJob).values(status=JobStatus.DONE)) and None,
    ),
    Case(
        rules.GOOGLE_TOKEN,
        AlertPriority.HIGH,
        ("Renewing the hub's access to Google Drive failed", "503", "reconnect"),
        lambda s, ws, at: _refresh(s, ws, at, ok=False),
        lambda s, ws, at: _refresh(s, ws, at, ok=True),
    ),
    Case(
        rules.GOOGLE_TOKEN_EXPIRING,
        AlertPriority.HIGH,
        ("access to Google Drive in 6 days", "press Connect with Google"),
        lambda s, ws, at: _grant_ends(s, ws, at, after=dt.timedelta(days=6)),
        # A reconnect: a new grant, a week from now again.
        lambda s, ws, at: _grant_ends(s, ws, at, after=dt.timedelta(days=30)),
    ),
]


def _evaluate(session: Session, now: dt.datetime) -> None:
    evaluate(session, now=now)
    session.commit()


def _alerts(session: Session) -> list[Alert]:
    return list(
        session.scalars(select(Alert).execution_options(populate_existing=True).order_by(Alert.id))
    )


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_a_rule_raises_settles_and_regresses(session: Session, case: Case) -> None:
    ws = factories.workspace(session, slug="a").id
    factories.workspace(session, slug="b")
    case.make(session, ws, T0)
    session.commit()
    _evaluate(session, T0)
    (alert,) = _alerts(session)
    assert (alert.workspace_id, alert.type, alert.priority) == (ws, case.rule, case.priority)
    assert (alert.state, alert.count, alert.regressed) == (AlertState.OPEN, 1, False)
    for words in case.words:
        assert words in alert.message
    # Seen again next minute: the same incident, not a new occurrence.
    _evaluate(session, T0 + MINUTE)
    (alert,) = _alerts(session)
    assert alert.count == 1 and alert.last_seen_at == T0 + MINUTE

    case.clear(session, ws, T0 + 2 * MINUTE)
    session.commit()
    _evaluate(session, T0 + 2 * MINUTE)
    _evaluate(session, T0 + 6 * MINUTE)  # four clear minutes: not yet
    (alert,) = _alerts(session)
    assert alert.state is AlertState.OPEN and alert.clear_since == T0 + 2 * MINUTE
    _evaluate(session, T0 + 7 * MINUTE)
    (alert,) = _alerts(session)
    assert alert.state is AlertState.RESOLVED

    case.make(session, ws, T0 + 8 * MINUTE)
    session.commit()
    _evaluate(session, T0 + 8 * MINUTE)
    (alert,) = _alerts(session)
    assert (alert.state, alert.regressed, alert.count) == (AlertState.OPEN, True, 2)


def test_failure_rate_needs_five_calls_and_more_than_half_failing(session: Session) -> None:
    ws = factories.workspace(session).id
    _calls(session, ws, T0, ok=0, failed=4)
    session.commit()
    assert rules.failing_providers(session, now=T0) == []  # 4 calls say too little
    _calls(session, ws, T0, ok=1, failed=0)
    session.commit()
    (found,) = rules.failing_providers(session, now=T0)  # 4 of 5 failed
    assert found.priority is AlertPriority.CRITICAL
    _forget_calls(session)
    _calls(session, ws, T0, ok=3, failed=2)
    session.commit()
    assert rules.failing_providers(session, now=T0) == []  # 2 of 5: not more than half
    _calls(session, ws, T0 - 16 * MINUTE, ok=0, failed=10)  # older than the window
    session.commit()
    assert rules.failing_providers(session, now=T0) == []
    _forget_calls(session)
    _calls(session, ws, T0, ok=2, failed=3)
    session.commit()
    (found,) = rules.failing_providers(session, now=T0)
    assert (found.workspace_id, found.entity_id, found.priority) == (
        ws,
        "stripe",
        AlertPriority.CRITICAL,
    )


def test_one_workspaces_failures_never_raise_for_another(session: Session) -> None:
    a = factories.workspace(session, slug="a").id
    b = factories.workspace(session, slug="b").id
    _calls(session, a, T0, ok=0, failed=5)
    _calls(session, b, T0, ok=4, failed=1)  # together 6 of 9 failed: b's own are fine
    _breaker(session, a, "open", T0)
    _job(session, a, status=JobStatus.DEAD, run_after=T0, error="boom")
    session.commit()
    _evaluate(session, T0)
    alerts = _alerts(session)
    # (a's open breaker is in its failing-Stripe incident: one outage, one incident.)
    assert {x.type for x in alerts} == {rules.PROVIDER_FAILING, rules.JOB_DEAD}
    assert {x.workspace_id for x in alerts} == {a}


def test_a_paused_kinds_old_jobs_are_not_lag(session: Session) -> None:
    a = factories.workspace(session, slug="a").id
    b = factories.workspace(session, slug="b").id
    for ws in (a, b):
        _job(
            session,
            ws,
            status=JobStatus.PENDING,
            run_after=T0 - 30 * MINUTE,
            kind="invoices.local",
            provider=None,
        )
    session.add(JobKindPause(workspace_id=a, kind="invoices.local", paused_by="operator:1"))
    session.commit()
    assert [c.workspace_id for c in rules.outbox_lag(session, now=T0)] == [b]
    # The platform's pause holds every workspace's.
    session.add(JobKindPause(workspace_id=None, kind="invoices.local", paused_by="cli"))
    session.commit()
    assert rules.outbox_lag(session, now=T0) == []
    # Nor are webhooks whose handling is paused.
    session.add(
        InboundEvent(
            provider="stripe",
            external_id="evt_paused",
            event_type="invoice.paid",
            workspace_id=a,
            payload={},
            received_at=T0 - 5 * MINUTE,
        )
    )
    session.commit()
    assert [c.workspace_id for c in rules.inbox_lag(session, now=T0)] == [a]
    session.add(JobKindPause(workspace_id=a, kind="inbox.process", paused_by="operator:1"))
    session.commit()
    assert rules.inbox_lag(session, now=T0) == []


def test_jobs_behind_an_open_breaker_fold_into_its_incident(session: Session) -> None:
    ws = factories.workspace(session).id
    _breaker(session, ws, "open", T0)
    _job(
        session,
        ws,
        status=JobStatus.PENDING,
        run_after=T0 - 20 * MINUTE,
        kind="stripe.create_invoice",
        provider="stripe",
    )
    session.commit()
    _evaluate(session, T0)
    _evaluate(session, T0 + MINUTE)
    (alert,) = _alerts(session)
    assert alert.type == rules.BREAKER_OPEN and "1 job waits in the queue" in alert.message
    assert alert.count == 1 and alert.last_seen_at == T0 + MINUTE


def test_a_providers_breaker_and_failure_rate_are_one_incident(session: Session) -> None:
    """Issue 14, journey 4: an outage trips both rules in the same minute; it is one incident
    and one message, whichever rule saw it first, open while either sign is there."""
    a = factories.workspace(session, slug="a").id
    _calls(session, a, T0, ok=0, failed=6)
    _breaker(session, a, "open", T0)
    session.commit()
    _evaluate(session, T0)
    # Both at once: the failure rate (critical) holds the breaker.
    (alert,) = _alerts(session)
    assert (alert.type, alert.priority) == (rules.PROVIDER_FAILING, AlertPriority.CRITICAL)
    # The failures leave the window; the breaker, still open, keeps the incident open.
    _forget_calls(session)
    session.commit()
    for minutes in (1, 7, 13):
        _evaluate(session, T0 + minutes * MINUTE)
    (alert,) = _alerts(session)
    assert (alert.state, alert.count, alert.clear_since) == (AlertState.OPEN, 1, None)
    _breaker(session, a, "closed", T0)
    session.commit()
    _evaluate(session, T0 + 14 * MINUTE)
    _evaluate(session, T0 + 19 * MINUTE)
    (alert,) = _alerts(session)
    assert alert.state is AlertState.RESOLVED
    notices = session.scalars(
        select(AlertEvent.detail).where(AlertEvent.what == "notified").order_by(AlertEvent.id)
    )
    assert [n.split(" to ")[0] for n in notices] == ["notice 1 (opened)", "notice 2 (resolved)"]

    # The breaker first (a busy account: the failures are a small share of its calls), the
    # failure rate later: the breaker's incident holds it.
    b = factories.workspace(session, slug="b").id
    _calls(session, b, T0, ok=20, failed=5)
    _breaker(session, b, "open", T0)
    session.commit()
    _evaluate(session, T0 + MINUTE)
    _calls(session, b, T0 + MINUTE, ok=0, failed=30)
    session.commit()
    _evaluate(session, T0 + 2 * MINUTE)
    (breaker,) = [x for x in _alerts(session) if x.workspace_id == b]
    assert (breaker.type, breaker.priority, breaker.state) == (
        rules.BREAKER_OPEN,
        AlertPriority.HIGH,
        AlertState.OPEN,
    )


def test_a_reconnect_after_a_refused_renewal_clears_the_google_rule(session: Session) -> None:
    ws = factories.workspace(session).id
    _refresh(session, ws, T0, ok=False)
    row = _google(session, ws)
    row.status = IntegrationStatus.ERROR
    session.commit()
    (found,) = rules.google_tokens(session, now=T0)
    assert "Google refused" in found.message and "Reconnect" in found.message
    row.status, row.connected_at = IntegrationStatus.ACTIVE, T0 + MINUTE
    session.commit()
    assert rules.google_tokens(session, now=T0 + MINUTE) == []


def test_a_live_show_judges_stripe_on_five_minutes_with_tighter_thresholds(
    session: Session,
) -> None:
    live = factories.workspace(session, slug="live").id
    quiet = factories.workspace(session, slug="quiet").id
    session.add(Show(workspace_id=live, title="Friday drop", status=ShowStatus.LIVE))
    session.add(Show(workspace_id=quiet, title="Old drop", status=ShowStatus.ENDED))
    for ws in (live, quiet):
        # Ten minutes ago all was well; in the last five, one call of three failed.
        _calls(session, ws, T0 - 10 * MINUTE, ok=6, failed=0)
        _calls(session, ws, T0 - 2 * MINUTE, ok=2, failed=1)
    session.commit()
    (found,) = rules.failing_providers(session, now=T0)
    assert (found.workspace_id, found.priority) == (live, AlertPriority.CRITICAL)
    assert "1 of 3 calls to Stripe failed in the last 5 minutes" in found.message
    # A quarter is the live threshold: one of four is not over it.
    _calls(session, live, T0 - MINUTE, ok=1, failed=0)
    session.commit()
    assert rules.failing_providers(session, now=T0) == []


def test_a_google_grant_ending_within_seven_days_raises_in_words(session: Session) -> None:
    ws = factories.workspace(session).id
    _grant_ends(session, ws, T0, after=dt.timedelta(days=8))
    session.commit()
    assert rules.google_token_expiring(session, now=T0) == []  # 8 days: not yet
    _grant_ends(session, ws, T0, after=dt.timedelta(days=6))
    session.commit()
    (found,) = rules.google_token_expiring(session, now=T0)
    row = _google(session, ws)
    assert (found.workspace_id, found.entity_type, found.entity_id, found.priority) == (
        ws,
        "integration",
        str(row.id),
        AlertPriority.HIGH,
    )
    # When, in words and as a date, and what to do.
    assert "Google ends the hub's access to Google Drive in 6 days" in found.message
    assert "on Sunday 7 March at 12:00 UTC" in found.message
    assert "open Google Drive under Integrations and press Connect with Google" in found.message
    # Past its end and still Active (the renewal has not failed yet): said so.
    (ended,) = rules.google_token_expiring(session, now=T0 + dt.timedelta(days=6, hours=3))
    assert "Google ended the hub's access to Google Drive 3 hours ago" in ended.message


def test_no_google_expiry_alert_for_a_disconnected_or_unending_grant(session: Session) -> None:
    a = factories.workspace(session, slug="a").id
    b = factories.workspace(session, slug="b").id
    _grant_ends(session, a, T0, after=dt.timedelta(days=6))
    _google(session, a).status = IntegrationStatus.INACTIVE  # disconnected
    _google(session, b)  # connected, and Google set no end to the grant
    session.commit()
    assert rules.google_token_expiring(session, now=T0) == []
    _evaluate(session, T0)
    assert _alerts(session) == []
