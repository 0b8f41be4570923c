"""The minute's evaluation of the alert rules: every condition present is raised as a
continuing condition of its incident, every incident whose condition is gone settles (resolves
after five clear minutes: HUB_ALERT_AUTO_RESOLVE_SECONDS), and unacknowledged incidents get
their four-hourly reminder. The scheduler runs it every HUB_ALERT_RULES_SECONDS (a minute).

One transaction. On PostgreSQL it first takes a transaction-level advisory lock: with several
scheduler processes one evaluates and the others skip the tick (the lock ends with the commit,
after the writes are visible). On SQLite the transaction's BEGIN IMMEDIATE serialises. A second
evaluation in the same minute changes nothing that matters: a condition seen again does not
count again (``occurrence=False``), a clear incident keeps its first clear time, and a reminder
is due only four hours after the last notice.

Tested in tests/health/test_evaluate.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import structlog
from sqlalchemy import text
from sqlalchemy.orm import Session

from backend.health import rules
from backend.platform import incident_notify, incidents
from models import utcnow

log = structlog.get_logger("alerts")

# pg_try_advisory_xact_lock's key for the evaluation (any constant no other lock uses: the
# periodic registry's keys are hashes of job ids, this is "ALRT" in ASCII).
LOCK_KEY = 0x414C5254
RECONCILIATION_RULE = "invoices.reconciliation"


@dataclass
class Report:
    evaluated: bool = True
    raised: int = 0  # new or reopened incidents
    present: int = 0  # conditions seen, folded ones included
    resolved: int = 0
    reminded: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)


def _locked(session: Session) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY}))


def raise_present(
    session: Session, conditions: list[rules.Condition], *, now: dt.datetime
) -> tuple[int, list[rules.Condition]]:
    """Raise each condition as a continuing one. Returns how many incidents are new (or
    reopened), and the conditions that are their own incident: not folded into a provider's."""
    raised, own = 0, []
    for c in conditions:
        result = incidents.raise_incident(
            session,
            workspace_id=c.workspace_id,
            rule=c.rule,
            message=c.message,
            priority=c.priority,
            entity_type=c.entity_type,
            entity_id=c.entity_id,
            provider=c.provider,
            occurrence=False,
            who="rules",
            now=now,
        )
        raised += result.new
        if result.alert.type == c.rule:
            own.append(c)
    return raised, own


def settle_rule(
    session: Session, rule: str, conditions: list[rules.Condition], *, now: dt.datetime
) -> int:
    return incidents.settle(
        session, rule=rule, firing=[(c.workspace_id, c.key) for c in conditions], now=now
    )


def evaluate(session: Session, *, now: dt.datetime | None = None) -> Report:
    """Evaluate every rule once. The caller commits."""
    now = now or utcnow()
    if not _locked(session):
        return Report(evaluated=False)
    report = Report()
    for rule, find in rules.EVALUATED.items():
        conditions = find(session, now=now)
        report.by_rule[rule] = len(conditions)
        report.present += len(conditions)
        raised, own = raise_present(session, conditions, now=now)
        report.raised += raised
        # A folded condition (lag behind an open breaker) is the breaker's now: its own
        # incident, if one was open from before the breaker, is not firing and settles.
        report.resolved += settle_rule(session, rule, own, now=now)
    # Reconciliation raises when it finds differences; here it only learns they are gone.
    report.resolved += incidents.settle(
        session, rule=RECONCILIATION_RULE, firing=rules.open_differences(session), now=now
    )
    report.reminded = incident_notify.remind(session, now=now)
    log.info(
        "alerts.evaluated",
        raised=report.raised,
        present=report.present,
        resolved=report.resolved,
        reminded=report.reminded,
    )
    return report


def watch_scheduler(session: Session, *, now: dt.datetime | None = None) -> bool:
    """The sidecar's check of the scheduler's heartbeat: raise the platform's incident while it
    is stale, settle it while fresh. True when the scheduler looks stopped. The caller commits."""
    now = now or utcnow()
    conditions = rules.scheduler_stopped(session, now=now)
    raise_present(session, conditions, now=now)
    settle_rule(session, rules.SCHEDULER_STOPPED, conditions, now=now)
    return bool(conditions)
