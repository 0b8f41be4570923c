"""Incidents: every alert is raised through here, so one incident is one alert.

An incident is grouped by (workspace, rule, entity): while it is not resolved, a recurrence
bumps its count and last-seen time instead of making a new alert (the database's partial unique
index makes this hold for raisers in different processes too). A recurrence after a resolve
reopens the same row marked *regressed*. A provider failing for a workspace is one incident:
its breaker open and most of its calls failing are two signs of one outage, so whichever is
raised first holds the other (and the provider's dead-job and lag alerts) while it is open.
Each change is written to the incident's history (``alert_events``) and, when it calls for
telling people, the deliveries are enqueued in the same transaction
(``backend/platform/incident_notify.py``).

Tested in tests/platform/test_incidents.py (the provider's incident through the evaluation in
tests/health/test_rules.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.db import conflict_insert
from backend.platform import incident_notify
from backend.platform.alerts import clip
from models import Alert, AlertEvent, AlertPriority, AlertState, utcnow

BREAKER_RULE = "breaker.open"
FAILING_RULE = "provider.failing"
# A provider's own incident for a workspace: its breaker open, or most of its calls failing.
# Without this, an outage trips both in the same minute and tells people twice (two incidents,
# two Slack messages) about one thing; so whichever is open holds the other, and either sign
# still present keeps it from resolving.
PROVIDER_RULES = (FAILING_RULE, BREAKER_RULE)
# Rules whose incidents are a symptom of a provider's outage: folded into the provider's incident
# (its breaker's, or else its failure rate's).
FOLDED_UNDER_BREAKER = frozenset({"job.dead", "inbox.lag", "outbox.lag"})
RANK = {p: n for n, p in enumerate(AlertPriority)}
QUIET = frozenset({AlertState.SNOOZED, AlertState.IGNORED})


@dataclass(frozen=True)
class Raised:
    alert: Alert
    # A new incident, or a resolved one reopened: not a recurrence of an open one.
    new: bool


# The partial unique indexes' predicate (migration 0010), spelled as they are.
_UNRESOLVED = f"state != '{AlertState.RESOLVED.value}'"


def auto_resolve_after() -> dt.timedelta:
    """How long the condition must have been away before the incident resolves by itself
    (HUB_ALERT_AUTO_RESOLVE_SECONDS: five minutes unless set)."""
    return dt.timedelta(seconds=get_settings().alert_auto_resolve_seconds)


def entity_key(entity_type: str | None, entity_id: str | None) -> str:
    return f"{entity_type}:{entity_id}" if entity_type else ""


def event(
    session: Session,
    alert: Alert,
    what: str,
    who: str,
    detail: str = "",
    *,
    at: dt.datetime | None = None,
) -> None:
    session.add(
        AlertEvent(
            alert_id=alert.id,
            workspace_id=alert.workspace_id,
            at=at or utcnow(),
            what=what,
            who=who,
            detail=clip(detail, 400),
        )
    )


def _scope(workspace_id: int | None) -> object:
    if workspace_id is None:
        return Alert.workspace_id.is_(None)
    return Alert.workspace_id == workspace_id


def find_unresolved(
    session: Session, *, workspace_id: int | None, rule: str, key: str
) -> Alert | None:
    """The open incident of this group, locked until the transaction ends (PostgreSQL; SQLite's
    write lock, taken at BEGIN IMMEDIATE, already serialises)."""
    return session.scalars(
        select(Alert)
        .where(_scope(workspace_id), Alert.type == rule, Alert.entity_key == key)  # type: ignore[arg-type]
        .where(Alert.state != AlertState.RESOLVED)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def raise_incident(
    session: Session,
    *,
    workspace_id: int | None,
    rule: str,
    message: str,
    priority: AlertPriority = AlertPriority.NORMAL,
    entity_type: str | None = None,
    entity_id: str | None = None,
    provider: str | None = None,
    occurrence: bool = True,
    who: str = "scheduler",
    now: dt.datetime | None = None,
) -> Raised:
    """Raise, or recur, the incident of (workspace, rule, entity).

    ``occurrence``: a new happening (a job died) counts; a condition seen again by the minute's
    evaluation (``False``) only counts when it had cleared in between. ``provider``: whose
    incident, if open, this alert folds into (``PROVIDER_RULES``).
    """
    now = now or utcnow()
    message = clip(message)
    key = entity_key(entity_type, entity_id)
    host = _provider_incident(session, workspace_id, rule, key, provider)
    if host is not None:
        if occurrence:
            host.count += 1
        host.last_seen_at = now
        if rule in PROVIDER_RULES:
            # The outage's other sign is still there: the incident is not clear yet.
            host.clear_since = None
        if occurrence:
            # A continuing condition is seen every minute: a line a minute would bury the
            # history. The provider's incident already says that work waits.
            event(session, host, "folded", who, f"{rule}: {message}", at=now)
        return Raised(host, new=False)
    for _ in range(3):  # each pass loses at most one race, to a raiser that then committed
        alert = find_unresolved(session, workspace_id=workspace_id, rule=rule, key=key)
        if alert is not None:
            _recur(session, alert, message, priority, occurrence, who, now)
            return Raised(alert, new=False)
        alert = _reopen(session, workspace_id, rule, key, message, priority, who, now)
        if alert is not None:
            return Raised(alert, new=True)
        inserted = session.execute(
            conflict_insert(session, Alert)
            .values(
                workspace_id=workspace_id,
                type=rule,
                priority=priority,
                message=message,
                entity_type=entity_type,
                entity_id=entity_id,
                entity_key=key,
                state=AlertState.OPEN,
                created_at=now,
                first_seen_at=now,
                last_seen_at=now,
                count=1,
                ignored_for_ever=False,
                regressed=False,
                notified_count=0,
            )
            .on_conflict_do_nothing(
                index_elements=["workspace_id", "type", "entity_key"]
                if workspace_id is not None
                else ["type", "entity_key"],
                # The indexes' predicates as constants: a bound parameter is fine the first
                # few times, but once PostgreSQL plans the prepared statement generically it
                # can no longer match the partial index ("no unique or exclusion constraint
                # matching the ON CONFLICT specification").
                index_where=text(_UNRESOLVED)
                if workspace_id is not None
                else text(f"workspace_id IS NULL AND {_UNRESOLVED}"),
            )
            .returning(Alert.id)
        ).scalar()
        if inserted is not None:
            alert = session.get(Alert, inserted)
            assert alert is not None
            event(session, alert, "raised", who, message, at=now)
            incident_notify.notify(session, alert, "opened", now=now)
            return Raised(alert, new=True)
    raise RuntimeError(f"could not raise the incident {rule} {key} after three tries")


def _provider_incident(
    session: Session, workspace_id: int | None, rule: str, key: str, provider: str | None
) -> Alert | None:
    """The open incident of ``provider`` that an alert of ``rule`` folds into, if any: for a
    symptom (dead jobs, lag) the breaker's or else the failure rate's; for one of the two
    ``PROVIDER_RULES``, the other one's, unless its own is open (it goes on as itself)."""
    if provider is None or workspace_id is None:
        return None
    if rule in PROVIDER_RULES:
        if find_unresolved(session, workspace_id=workspace_id, rule=rule, key=key) is not None:
            return None
        hosts = [other for other in PROVIDER_RULES if other != rule]
    elif rule in FOLDED_UNDER_BREAKER:
        hosts = [BREAKER_RULE, FAILING_RULE]
    else:
        return None
    for host_rule in hosts:
        host = find_unresolved(
            session, workspace_id=workspace_id, rule=host_rule, key=f"provider:{provider}"
        )
        if host is not None:
            return host
    return None


def _recur(
    session: Session,
    alert: Alert,
    message: str,
    priority: AlertPriority,
    occurrence: bool,
    who: str,
    now: dt.datetime,
) -> None:
    alert.last_seen_at = now
    alert.message = message
    if occurrence or alert.clear_since is not None:
        alert.count += 1
        event(session, alert, "recurred", who, message, at=now)
    alert.clear_since = None
    reason = None
    if RANK[priority] > RANK[alert.priority]:
        event(
            session, alert, "escalated", who, f"{alert.priority.value} → {priority.value}", at=now
        )
        alert.priority = priority
        if alert.state is AlertState.IGNORED and not alert.ignored_for_ever:
            alert.state = AlertState.OPEN  # ignored "until it escalates"
        reason = "escalated"
    if (
        alert.state is AlertState.SNOOZED
        and alert.snoozed_until is not None
        and alert.snoozed_until <= now
    ):
        alert.state, alert.snoozed_until = AlertState.OPEN, None
        event(session, alert, "snooze ended", who, "still happening when the snooze ended", at=now)
        reason = reason or "still happening"
    if reason is not None:
        incident_notify.notify_if_due(session, alert, reason, now=now)


def _reopen(
    session: Session,
    workspace_id: int | None,
    rule: str,
    key: str,
    message: str,
    priority: AlertPriority,
    who: str,
    now: dt.datetime,
) -> Alert | None:
    """A recurrence after a resolve reopens the latest resolved incident, marked regressed."""
    resolved_id = session.scalar(
        select(Alert.id)
        .where(_scope(workspace_id), Alert.type == rule, Alert.entity_key == key)  # type: ignore[arg-type]
        .where(Alert.state == AlertState.RESOLVED)
        .order_by(Alert.id.desc())
        .limit(1)
    )
    if resolved_id is None:
        return None
    try:
        with session.begin_nested():
            # Only if still resolved: a raiser that got here first reopened it (we then find
            # it open), or inserted a new open one (the unique index refuses this update).
            reopened = session.execute(
                update(Alert)
                .where(Alert.id == resolved_id, Alert.state == AlertState.RESOLVED)
                .values(
                    state=AlertState.OPEN,
                    regressed=True,
                    count=Alert.count + 1,
                    last_seen_at=now,
                    message=message,
                    priority=priority,
                    clear_since=None,
                    snoozed_until=None,
                    resolved_at=None,
                    acknowledged_at=None,
                )
                .returning(Alert.id)
                .execution_options(synchronize_session=False)
            ).scalar()
    except IntegrityError:
        return None
    if reopened is None:
        return None
    alert = session.scalars(
        select(Alert).where(Alert.id == resolved_id).execution_options(populate_existing=True)
    ).one()
    event(session, alert, "regressed", who, message, at=now)
    incident_notify.notify(session, alert, "regressed", now=now)
    return alert


def resolve(session: Session, alert: Alert, *, who: str, now: dt.datetime, what: str) -> None:
    """Resolve (a person, or the condition gone): and tell whoever was told it opened."""
    alert.state, alert.resolved_at = AlertState.RESOLVED, now
    alert.snoozed_until, alert.clear_since = None, None
    event(session, alert, what, who, at=now)
    if alert.notified_count:
        incident_notify.notify(session, alert, "resolved", now=now)


def settle(
    session: Session,
    *,
    rule: str,
    firing: Iterable[tuple[int | None, str]],
    now: dt.datetime | None = None,
) -> int:
    """After an evaluation of ``rule``: incidents whose (workspace, entity key) is not in
    ``firing`` start (or continue) being clear, and resolve once clear for
    ``auto_resolve_after()``. Returns how many resolved."""
    now = now or utcnow()
    still = set(firing)
    resolved = 0
    clear_for = auto_resolve_after()
    for alert in session.scalars(
        select(Alert)
        .where(Alert.type == rule, Alert.state != AlertState.RESOLVED)
        .with_for_update()
        .execution_options(populate_existing=True)
    ):
        if (alert.workspace_id, alert.entity_key) in still:
            continue
        if alert.clear_since is None:
            alert.clear_since = now
        elif now - alert.clear_since >= clear_for:
            resolve(session, alert, who="scheduler", now=now, what="auto-resolved")
            resolved += 1
    return resolved


def resolve_condition(
    session: Session, *, workspace_id: int | None, rule: str, key: str, who: str
) -> bool:
    """A raiser that knows its condition is gone (reconciliation's differences fixed)
    resolves the incident at once."""
    alert = find_unresolved(session, workspace_id=workspace_id, rule=rule, key=key)
    if alert is None:
        return False
    resolve(session, alert, who=who, now=utcnow(), what="resolved")
    return True


def job_dead(
    session: Session,
    workspace_id: int | None,
    kind: str,
    provider: str | None,
    attempts: int,
    error: str,
) -> Raised:
    """A job died (``outbox.fail``): one incident per (workspace, job kind), folded into the
    provider's breaker incident while that is open."""
    return raise_incident(
        session,
        workspace_id=workspace_id,
        rule="job.dead",
        priority=AlertPriority.HIGH,
        message=f"{kind} jobs failed and stopped; the latest after {attempts} time(s): "
        f"{clip(error, 400).rstrip('.')}. Open Jobs to see them and replay them once the "
        "cause is fixed.",
        entity_type="job_kind",
        entity_id=kind,
        provider=provider,
    )
