"""The alert rules: each reads what is stored and returns the conditions present now, one per
(workspace, rule, entity), with a severity and a message that says what is wrong, what waits and
what to do. They only read; ``backend/health/evaluate.py`` raises and settles incidents from
them every minute. The scheduler's own heartbeat is watched by the sidecar (``scheduler_stopped``
here, run by ``backend/api/scheduler_watch.py``): a dead scheduler cannot report its death.

Tested in tests/health/test_rules.py (and, through the evaluator, tests/health/test_evaluate.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from backend.connections.google_tokens import PROVIDER as GOOGLE
from backend.connections.google_tokens import RECONNECT, REFRESH_OPERATION, refresh_expiry_of
from backend.platform import heartbeat, outbox_pauses
from backend.platform.alerts import clip
from backend.platform.inbox import PROCESS_KIND
from backend.platform.provider_failures import provider_name
from models import (
    OUTCOME_COLUMNS,
    AlertPriority,
    CallMinute,
    InboundEvent,
    InboundStatus,
    Integration,
    IntegrationLog,
    IntegrationStatus,
    InvoiceDiscrepancy,
    JobKindPause,
    JobStatus,
    OutboxJob,
    ProviderCircuit,
    Show,
    ShowStatus,
)

FAILURE_RATE = 0.5
FAILURE_WINDOW = dt.timedelta(minutes=15)
# Fewer calls than this say too little: two failures out of three is a blip, not an outage.
FAILURE_MIN_CALLS = 5
INBOX_LAG = dt.timedelta(seconds=60)
OUTBOX_LAG = dt.timedelta(minutes=5)
# The scheduler beats every few seconds (HUB_HEARTBEAT_SECONDS); a minute of silence is a stop.
HEARTBEAT_STALE = dt.timedelta(seconds=60)
# Live-show mode: the providers a live show's buyers pay and are messaged through.
LIVE_PROVIDERS = frozenset({"stripe", "messenger"})
LIVE_WINDOW = dt.timedelta(minutes=5)
LIVE_FAILURE_RATE = 0.25
LIVE_MIN_CALLS = 3
# A week's notice of Google ending a Drive grant: time for an owner to find a moment to reconnect.
# (An app in "testing" gets seven-day grants: the alert then stands from the first day.)
GOOGLE_EXPIRY_NOTICE = dt.timedelta(days=7)

PROVIDER_FAILING = "provider.failing"
BREAKER_OPEN = "breaker.open"
JOB_DEAD = "job.dead"
INBOX_LAGGING = "inbox.lag"
OUTBOX_LAGGING = "outbox.lag"
GOOGLE_TOKEN = "google.token"  # noqa: S105 (a rule's name, not a secret)
GOOGLE_TOKEN_EXPIRING = "google.token_expiring"  # noqa: S105 (a rule's name, not a secret)
SCHEDULER_STOPPED = "scheduler.stopped"


@dataclass(frozen=True)
class Condition:
    workspace_id: int | None
    rule: str
    entity_type: str | None
    entity_id: str | None
    priority: AlertPriority
    message: str
    # Whose incident this folds into while that is open (incidents.PROVIDER_RULES and
    # FOLDED_UNDER_BREAKER): the provider's breaker or failure rate.
    provider: str | None = None

    @property
    def key(self) -> str:
        return f"{self.entity_type}:{self.entity_id}" if self.entity_type else ""


def _ago(now: dt.datetime, then: dt.datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds} seconds"
    if seconds < 7200:
        return f"{seconds // 60} minutes"
    return f"{seconds // 3600} hours"


def _within(now: dt.datetime, then: dt.datetime) -> str:
    """How long until ``then``, in the largest whole unit that says it: "6 days"."""
    seconds = max(0, int((then - now).total_seconds()))
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 7200:
        return f"{seconds // 3600} hours"
    return _plural(max(1, seconds // 60), "minute")


def _when(moment: dt.datetime) -> str:
    moment = moment.astimezone(dt.UTC)
    return f"{moment:%A} {moment.day} {moment:%B} at {moment:%H:%M} UTC"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _window_start(now: dt.datetime, window: dt.timedelta) -> dt.datetime:
    """The first rollup minute inside ``window`` (the current, partial minute counts)."""
    return now.replace(second=0, microsecond=0) - window + dt.timedelta(minutes=1)


def live_workspaces(session: Session) -> set[int]:
    return set(session.scalars(select(Show.workspace_id).where(Show.status == ShowStatus.LIVE)))


def failing_providers(session: Session, *, now: dt.datetime) -> list[Condition]:
    """More than half of a workspace's calls to a provider failed in 15 minutes (5 calls at
    least): critical, since nothing that calls the provider gets through. While one of the
    workspace's shows is live, Stripe and Messenger are judged on 5 minutes with tighter
    thresholds: buyers are paying now, and a quarter of them failing is already an outage.
    Read from the per-minute rollups, never the raw logs."""
    failed = sum(CallMinute.__table__.c[name] for name in OUTCOME_COLUMNS if name != "ok")
    total = sum(CallMinute.__table__.c[name] for name in OUTCOME_COLUMNS)
    recent = CallMinute.minute >= _window_start(now, LIVE_WINDOW)
    rows = session.execute(
        select(
            CallMinute.workspace_id,
            CallMinute.provider,
            func.sum(total),
            func.sum(failed),
            func.sum(case((recent, total), else_=0)),
            func.sum(case((recent, failed), else_=0)),
        )
        .where(
            CallMinute.minute >= _window_start(now, FAILURE_WINDOW),
            CallMinute.minute <= now,
        )
        .group_by(CallMinute.workspace_id, CallMinute.provider)
    ).all()
    live = live_workspaces(session) if rows else set()
    found = []
    for workspace_id, provider, calls15, failures15, calls5, failures5 in rows:
        if workspace_id in live and provider in LIVE_PROVIDERS:
            calls, failures = int(calls5 or 0), int(failures5 or 0)
            minimum, rate, minutes = LIVE_MIN_CALLS, LIVE_FAILURE_RATE, 5
        else:
            calls, failures = int(calls15 or 0), int(failures15 or 0)
            minimum, rate, minutes = FAILURE_MIN_CALLS, FAILURE_RATE, 15
        if calls < minimum or failures / calls <= rate:
            continue
        found.append(
            Condition(
                workspace_id,
                PROVIDER_FAILING,
                "provider",
                provider,
                AlertPriority.CRITICAL,
                f"{failures} of {calls} calls to {provider_name(provider)} failed in the last "
                f"{minutes} minutes. Work for it waits in the queue and is retried; open Health "
                "to see the errors, and Integrations if the key or the connection changed.",
                # One outage, one incident: with the provider's breaker (incidents.PROVIDER_RULES).
                provider=provider,
            )
        )
    return found


def open_breakers(session: Session, *, now: dt.datetime) -> list[Condition]:
    """A connected account's breaker is open (or half-open, probing): its calls are held."""
    circuits = session.scalars(
        select(ProviderCircuit)
        .where(ProviderCircuit.state != "closed")
        .order_by(ProviderCircuit.key)
    ).all()
    if not circuits:
        return []
    waiting = dict(
        session.execute(
            select(OutboxJob.circuit_key, func.count())
            .where(
                OutboxJob.status == JobStatus.PENDING,
                OutboxJob.circuit_key.in_([c.key for c in circuits]),
            )
            .group_by(OutboxJob.circuit_key)
        ).all()
    )
    found = []
    for circuit in circuits:
        held = int(waiting.get(circuit.key, 0))
        why = f" (the last error: {clip(circuit.last_error or '', 200).rstrip('.')})"
        found.append(
            Condition(
                circuit.workspace_id,
                BREAKER_OPEN,
                "provider",
                circuit.provider,
                AlertPriority.HIGH,
                f"Calls to {circuit.provider} kept failing"
                + (why if circuit.last_error else "")
                + f", so the hub stopped calling it; {_plural(held, 'job')} "
                f"{'waits' if held == 1 else 'wait'} in the queue and run once it answers (it is "
                "tried again by itself). Check "
                f"{circuit.provider}'s status page, and Integrations if the key changed.",
                provider=circuit.provider,
            )
        )
    return found


def dead_jobs(session: Session, *, now: dt.datetime) -> list[Condition]:
    """Jobs that failed for good and were not replayed, per (workspace, job kind). The incident
    is raised when a job dies (``outbox.fail``); this keeps it present while they are there."""
    groups = session.execute(
        select(
            OutboxJob.workspace_id,
            OutboxJob.kind,
            OutboxJob.provider,
            func.count(),
            func.max(OutboxJob.id),
        )
        .where(OutboxJob.status == JobStatus.DEAD)
        .group_by(OutboxJob.workspace_id, OutboxJob.kind, OutboxJob.provider)
    ).all()
    if not groups:
        return []
    errors = dict(
        session.execute(
            select(OutboxJob.id, OutboxJob.last_error).where(
                OutboxJob.id.in_([g[4] for g in groups])
            )
        ).all()
    )
    found = []
    for workspace_id, kind, provider, count, latest in groups:
        error = clip(errors.get(latest) or "no error recorded", 300).rstrip(".")
        found.append(
            Condition(
                workspace_id,
                JOB_DEAD,
                "job_kind",
                kind,
                AlertPriority.HIGH,
                f"{_plural(int(count), kind + ' job')} failed and stopped (the latest: {error}). "
                "Their work is not done. Fix the cause, then replay them from Jobs.",
                provider=provider,
            )
        )
    return found


def inbox_lag(session: Session, *, now: dt.datetime) -> list[Condition]:
    """Webhooks stored more than a minute ago and not applied yet, per (workspace, provider).
    Not while their handling is paused (``inbox.process``): a pause holds them on purpose."""
    pausing = session.execute(
        select(JobKindPause.workspace_id).where(JobKindPause.kind == PROCESS_KIND)
    ).all()
    if any(row[0] is None for row in pausing):
        return []  # the platform holds every workspace's webhooks
    paused = [row[0] for row in pausing]
    stmt = (
        select(
            InboundEvent.workspace_id,
            InboundEvent.provider,
            func.count(),
            func.min(InboundEvent.received_at),
        )
        .where(
            InboundEvent.status == InboundStatus.PENDING,
            InboundEvent.received_at < now - INBOX_LAG,
        )
        .group_by(InboundEvent.workspace_id, InboundEvent.provider)
    )
    if paused:
        stmt = stmt.where(
            or_(InboundEvent.workspace_id.is_(None), InboundEvent.workspace_id.not_in(paused))
        )
    found = []
    for workspace_id, provider, count, oldest in session.execute(stmt).all():
        count = int(count)
        found.append(
            Condition(
                workspace_id,
                INBOX_LAGGING,
                "provider",
                provider,
                AlertPriority.HIGH,
                f"{_plural(count, provider + ' webhook')} arrived but "
                f"{'is' if count == 1 else 'are'} not applied yet, the oldest "
                f"{_ago(now, oldest)} ago: paid invoices and other changes from {provider} "
                "wait. Check that the scheduler runs (Dashboard) and the inbox jobs "
                "on Jobs.",
                # Applying a webhook calls no provider: a breaker never explains this lag.
            )
        )
    return found


def outbox_lag(session: Session, *, now: dt.datetime) -> list[Condition]:
    """Jobs due more than five minutes ago and still not run, per (workspace, job kind). A
    paused kind's jobs are held on purpose and are left out; jobs behind an open breaker are
    raised with their provider, so they fold into the breaker's incident."""
    rows = session.execute(
        select(
            OutboxJob.workspace_id,
            OutboxJob.kind,
            OutboxJob.provider,
            func.count(),
            func.min(OutboxJob.run_after),
        )
        .where(
            OutboxJob.status == JobStatus.PENDING,
            OutboxJob.run_after < now - OUTBOX_LAG,
            ~outbox_pauses.held(),
        )
        .group_by(OutboxJob.workspace_id, OutboxJob.kind, OutboxJob.provider)
    ).all()
    found = []
    for workspace_id, kind, provider, count, oldest in rows:
        count = int(count)
        found.append(
            Condition(
                workspace_id,
                OUTBOX_LAGGING,
                "job_kind",
                kind,
                AlertPriority.HIGH,
                f"{_plural(count, kind + ' job')} waited past {'its' if count == 1 else 'their'} "
                "time, the oldest due "
                f"{_ago(now, oldest)} ago. The work they do waits with them. Check that the "
                "scheduler runs (Dashboard) and what Jobs says about them.",
                provider=provider,
            )
        )
    return found


def google_tokens(session: Session, *, now: dt.datetime) -> list[Condition]:
    """A Google Drive connection whose last renewal of its access failed (since it was last
    connected). Google refusing it turns the integration Error; Google not answering leaves it
    Active, and the hub tries again every few minutes until the token runs out."""
    latest = (
        select(func.max(IntegrationLog.id))
        .where(
            IntegrationLog.provider == GOOGLE,
            IntegrationLog.operation == REFRESH_OPERATION,
            IntegrationLog.integration_id.is_not(None),
        )
        .group_by(IntegrationLog.integration_id)
    )
    rows = session.execute(
        select(Integration, IntegrationLog)
        .join(IntegrationLog, IntegrationLog.integration_id == Integration.id)
        .where(
            IntegrationLog.id.in_(latest),
            IntegrationLog.outcome != "ok",
            Integration.status.in_([IntegrationStatus.ACTIVE, IntegrationStatus.ERROR]),
            # A reconnect after the failure starts afresh.
            or_(Integration.connected_at.is_(None), Integration.connected_at <= IntegrationLog.at),
        )
        .order_by(Integration.id)
    ).all()
    found = []
    for integration, entry in rows:
        error = clip(entry.error or "no answer", 300).rstrip(".")
        if integration.status is IntegrationStatus.ERROR:
            message = (
                f"Google refused to renew the hub's access to Google Drive ({error}). Drive "
                f"work waits until someone reconnects. {RECONNECT}"
            )
        else:
            message = (
                f"Renewing the hub's access to Google Drive failed {_ago(now, entry.at)} ago "
                f"({error}). It is tried again every few minutes; Drive work stops when the "
                f"current access runs out. If this stays, {RECONNECT[0].lower()}{RECONNECT[1:]}"
            )
        found.append(
            Condition(
                integration.workspace_id,
                GOOGLE_TOKEN,
                "integration",
                str(integration.id),
                AlertPriority.HIGH,
                message,
            )
        )
    return found


def google_token_expiring(session: Session, *, now: dt.datetime) -> list[Condition]:
    """An Active Google Drive connection whose grant Google ends within seven days (Google
    said when at connect time: an app in "testing" gets seven days). Renewals work until
    then and fail after; only a reconnect starts a new grant. Read from the integrations'
    unsealed facts: one row per connected workspace, no decryption."""
    rows = session.scalars(
        select(Integration)
        .where(Integration.provider == GOOGLE, Integration.status == IntegrationStatus.ACTIVE)
        .order_by(Integration.id)
    ).all()
    found = []
    for integration in rows:
        expiry = refresh_expiry_of(integration)
        if expiry is None or expiry - now > GOOGLE_EXPIRY_NOTICE:
            continue
        if expiry > now:
            message = (
                f"Google ends the hub's access to Google Drive in {_within(now, expiry)}, on "
                f"{_when(expiry)}: it was granted for a limited time. Drive work then stops "
                f"until someone reconnects. {RECONNECT} Do it before then: a reconnect starts "
                "a new grant."
            )
        else:
            message = (
                f"Google ended the hub's access to Google Drive {_ago(now, expiry)} ago, on "
                f"{_when(expiry)}: Drive work stops once the current access runs out. "
                f"{RECONNECT}"
            )
        found.append(
            Condition(
                integration.workspace_id,
                GOOGLE_TOKEN_EXPIRING,
                "integration",
                str(integration.id),
                AlertPriority.HIGH,
                message,
            )
        )
    return found


def scheduler_stopped(session: Session, *, now: dt.datetime) -> list[Condition]:
    """No scheduler process has beaten for a minute: the platform's incident (no workspace).
    Never evaluated by the scheduler itself. No heartbeat ever written is not a stop: a
    deployment may drain the queue with the external cron (``POST /outbox/run``) instead."""
    last = heartbeat.last_tick(session)
    if last is None or now - last <= HEARTBEAT_STALE:
        return []
    return [
        Condition(
            None,
            SCHEDULER_STOPPED,
            None,
            None,
            AlertPriority.CRITICAL,
            f"No scheduler has run for {_ago(now, last)}: jobs, webhooks and the minute's "
            "alert rules all wait. Start it (`python scheduler.py`, the Procfile's line) and "
            "read its log for why it stopped.",
        )
    ]


Rule = Callable[..., list[Condition]]

# What the scheduler's minute evaluates, in this order: a provider's own conditions first, so
# that the lag and dead jobs behind them fold into its incident in the same evaluation; its
# failure rate before its breaker, so that an outage that trips both at once is one critical
# incident (the breaker folds into it), not a high one.
EVALUATED: dict[str, Rule] = {
    PROVIDER_FAILING: failing_providers,
    BREAKER_OPEN: open_breakers,
    JOB_DEAD: dead_jobs,
    INBOX_LAGGING: inbox_lag,
    OUTBOX_LAGGING: outbox_lag,
    GOOGLE_TOKEN: google_tokens,
    GOOGLE_TOKEN_EXPIRING: google_token_expiring,
}


def open_differences(session: Session) -> set[tuple[int | None, str]]:
    """The shows that still have reconciliation differences not fixed, as (workspace, entity
    key) of their incidents. Reconciliation raises its incident when it finds them; this only
    tells the evaluator which are still there, so a fix by any means settles the incident."""
    rows = session.execute(
        select(InvoiceDiscrepancy.workspace_id, InvoiceDiscrepancy.show_id)
        .where(InvoiceDiscrepancy.resolved_at.is_(None))
        .distinct()
    ).all()
    return {(ws, f"show:{show}") for ws, show in rows}
