"""Reconciliation: our invoices of a show against Stripe's, on demand and hourly. The differences
(a missed webhook, a change made in Stripe's dashboard) are stored as findings until fixed.

Every function here takes the engine, not a session: Stripe is called between two short
transactions, never inside one (on SQLite an open transaction holds the database's write lock,
and the throttle before each call needs a transaction of its own). Reading Stripe and working
out what differs is reconciliation_diff.py; storing and fixing the findings is here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import structlog
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.connections import providers
from backend.db import session_scope
from backend.integrations import call_log
from backend.integrations.errors import ProviderError
from backend.integrations.stripe import StripeInvoice
from backend.invoicing import panel as invoice_panel
from backend.invoicing import service as invoicing
from backend.invoicing.reconciliation_diff import (
    AMOUNT,
    DUPLICATE,
    MISSING,
    STATUS,
    UNLINKED,
    compare,
    retrieve,
    take_snapshot,
)
from backend.platform import audit, incidents
from backend.platform.actors import Actor
from backend.platform.errors import NotFound
from models import (
    AlertPriority,
    Integration,
    IntegrationStatus,
    Invoice,
    InvoiceDiscrepancy,
    InvoiceStatus,
    JobStatus,
    OutboxJob,
    Show,
    utcnow,
)

log = structlog.get_logger("reconciliation")

GONE = "gone"  # resolved_by of a finding that no longer held on a later run
ALERT_TYPE = "invoices.reconciliation"
RECENT = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Finding:
    """One open difference, as the Invoices tab lists it."""

    id: int
    invoice_id: int
    handle: str
    attempt: int
    field: str  # status | amount | missing | unlinked | duplicate
    ours: str
    theirs: str
    external_id: str | None
    found_at: dt.datetime
    new: bool = False  # found by this run (not open before it)

    @property
    def fixable(self) -> bool:
        """Whether "Fix" can settle it; a second Stripe invoice needs a person in Stripe."""
        return self.field != DUPLICATE

    @property
    def summary(self) -> str:
        who = f"@{self.handle}" + (f" (attempt {self.attempt})" if self.attempt > 1 else "")
        if self.field == STATUS:
            return f"{who}: Stripe says {self.theirs}, we say {self.ours}."
        if self.field == AMOUNT:
            return f"{who}: Stripe's amount is {self.theirs}, ours {self.ours}."
        if self.field == MISSING:
            return f"{who}: Stripe has no invoice {self.external_id} any more (deleted there?)."
        if self.field == UNLINKED:
            return f"{who}: Stripe has invoice {self.theirs} for it, which we had not linked."
        return (
            f"{who}: Stripe has another invoice ({self.theirs}) for the same claims besides "
            f"{self.ours}. Void the extra one in Stripe's dashboard (if it is paid, refund it "
            "or void ours instead); the next check clears this."
        )


@dataclass(frozen=True, slots=True)
class FixResult:
    fixed: int
    # Findings "Fix" could not settle, each with what the operator should do.
    needs_you: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        said = f"Fixed {self.fixed} difference{'s' if self.fixed != 1 else ''}."
        return " ".join([said, *self.needs_you])


# -- storing ----------------------------------------------------------------------------------


def _creating(session: Session, invoice_ids: list[int]) -> set[int]:
    """Invoices whose creation job is still queued or running: not linked yet, by design."""
    if not invoice_ids:
        return set()
    keys = {invoice_panel.job_key(i): i for i in invoice_ids}
    return {
        keys[key]
        for key in session.scalars(
            select(OutboxJob.idempotency_key).where(
                OutboxJob.idempotency_key.in_(list(keys)),
                OutboxJob.status.in_([JobStatus.PENDING, JobStatus.RUNNING]),
            )
        )
    }


def _lock_show(session: Session, *, workspace_id: int, show_id: int) -> Show:
    """The show, locked: two runs (a click and the hourly job) store their findings in turn."""
    show = session.scalars(
        select(Show).where(Show.id == show_id, Show.workspace_id == workspace_id).with_for_update()
    ).first()
    if show is None:
        raise NotFound("This show does not exist in this workspace; pick one from Shows.")
    return show


def _open_rows(session: Session, show_id: int) -> list[InvoiceDiscrepancy]:
    return list(
        session.scalars(
            select(InvoiceDiscrepancy)
            .where(InvoiceDiscrepancy.show_id == show_id, InvoiceDiscrepancy.resolved_at.is_(None))
            .order_by(InvoiceDiscrepancy.id)
        )
    )


def _findings(
    session: Session, rows: list[InvoiceDiscrepancy], new: set[int] | None = None
) -> list[Finding]:
    invoices = {
        i.id: i
        for i in session.scalars(
            select(Invoice).where(Invoice.id.in_({r.invoice_id for r in rows}))
        )
    }
    found = []
    for row in rows:
        invoice = invoices[row.invoice_id]
        found.append(
            Finding(
                id=row.id,
                invoice_id=row.invoice_id,
                handle=invoice.buyer_handle,
                attempt=invoice.attempt,
                field=row.field,
                ours=row.ours,
                theirs=row.theirs,
                external_id=invoice.external_id,
                found_at=row.found_at,
                new=row.id in (new or ()),
            )
        )
    return sorted(found, key=lambda f: (f.handle, f.attempt, f.field))


def _resolve_alert(session: Session, *, workspace_id: int, show_id: int) -> None:
    # No differences left: the incident resolves now (and whoever was told hears so).
    incidents.resolve_condition(
        session,
        workspace_id=workspace_id,
        rule=ALERT_TYPE,
        key=incidents.entity_key("show", str(show_id)),
        who="reconciliation",
    )


def run_for_show(engine: Engine, *, actor: Actor, show_id: int) -> list[Finding]:
    """An operator's "Check against Stripe": compare the show's invoices with Stripe's and
    store the differences; the open findings (``new`` on those this run added). Owners and
    admins only (it records findings and may raise alerts). Raises NotFound without a
    connected Stripe."""
    actor.require_change("check the invoices against Stripe")
    return _run_for_show(engine, workspace_id=actor.workspace_id, show_id=show_id)


def _run_for_show(engine: Engine, *, workspace_id: int, show_id: int) -> list[Finding]:
    with session_scope(engine) as session:
        invoice_panel.show_for(session, workspace_id=workspace_id, show_id=show_id)
        external_ids = [
            e
            for e in session.scalars(
                select(Invoice.external_id).where(
                    Invoice.show_id == show_id, Invoice.external_id.is_not(None)
                )
            )
            if e
        ]
        stripe = providers.stripe_for(session, workspace_id=workspace_id)

    with call_log.scope(workspace_id=workspace_id):
        snapshot = take_snapshot(
            stripe, workspace_id=workspace_id, show_id=show_id, external_ids=external_ids
        )

    with session_scope(engine) as session:
        _lock_show(session, workspace_id=workspace_id, show_id=show_id)
        # Compared with our rows as they are now: a webhook handled during the calls counts.
        invoices = list(
            session.scalars(
                select(Invoice).where(
                    Invoice.show_id == show_id, Invoice.workspace_id == workspace_id
                )
            )
        )
        creating = _creating(session, [i.id for i in invoices if i.external_id is None])
        wanted, unknown = compare(invoices, snapshot, creating)
        now = utcnow()
        kept: list[InvoiceDiscrepancy] = []
        for row in _open_rows(session, show_id):
            key = (row.invoice_id, row.field)
            if row.invoice_id in unknown or wanted.get(key) == (row.ours, row.theirs):
                kept.append(row)
                wanted.pop(key, None)
            else:
                row.resolved_at, row.resolved_by = now, GONE
        added = [
            InvoiceDiscrepancy(
                workspace_id=workspace_id,
                show_id=show_id,
                invoice_id=invoice_id,
                field=field_,
                ours=ours,
                theirs=theirs,
                found_at=now,
            )
            for (invoice_id, field_), (ours, theirs) in wanted.items()
        ]
        session.add_all(added)
        session.flush()
        if not kept and not added:
            _resolve_alert(session, workspace_id=workspace_id, show_id=show_id)
        return _findings(session, kept + added, {row.id for row in added})


def open_findings(session: Session, *, workspace_id: int, show_id: int) -> list[Finding]:
    """The show's differences still open (from the last run), for the Invoices tab."""
    invoice_panel.show_for(session, workspace_id=workspace_id, show_id=show_id)
    return _findings(session, _open_rows(session, show_id))


# -- fixing -----------------------------------------------------------------------------------


def _missing_message(external_id: str) -> str:
    return (
        f"Stripe has no invoice {external_id} any more (deleted in Stripe's dashboard?), so "
        "the buyer has nothing to pay. Regenerate to send them a new invoice."
    )


def fix_all(engine: Engine, *, actor: Actor, show_id: int) -> FixResult:
    """Make our invoices say what Stripe says for every open finding of the show ("Fix").

    Stripe's invoices are read again first (a finding may be an hour old). An invoice Stripe no
    longer has cannot be copied: it turns Error, telling the operator to regenerate it.
    """
    actor.require_change("fix reconciliation differences")
    with session_scope(engine) as session:
        invoice_panel.show_for(session, workspace_id=actor.workspace_id, show_id=show_id)
        rows = _open_rows(session, show_id)
        findings = _findings(session, rows)
        stripe = providers.stripe_for(session, workspace_id=actor.workspace_id) if rows else None
    if stripe is None:
        return FixResult(fixed=0)

    wanted = {f.external_id for f in findings if f.field != UNLINKED and f.external_id}
    wanted |= {f.theirs for f in findings if f.field == UNLINKED}
    with call_log.scope(workspace_id=actor.workspace_id):
        fresh: dict[str, StripeInvoice | None] = {
            external_id: retrieve(stripe, external_id) for external_id in sorted(wanted)
        }

    with session_scope(engine) as session:
        _lock_show(session, workspace_id=actor.workspace_id, show_id=show_id)
        now = utcnow()
        fixed: list[int] = []
        marked_error: list[int] = []
        needs_you: list[str] = []
        by_id = {f.id: f for f in findings}
        for row in _open_rows(session, show_id):
            finding = by_id.get(row.id)
            if finding is None:
                continue  # found after we read Stripe: the next Fix settles it
            if not finding.fixable:
                needs_you.append(finding.summary)
                continue
            invoice = session.get_one(Invoice, row.invoice_id)
            if finding.field == UNLINKED:
                theirs = fresh.get(finding.theirs)
                if theirs is None:
                    continue  # gone since: the next run drops the finding
                invoice.external_id = invoice.external_id or theirs.id
                if invoice.external_id != theirs.id:
                    continue
            else:
                external_id = invoice.external_id or ""
                if external_id not in fresh:
                    continue  # relinked since we read Stripe: the next run looks again
                theirs = fresh[external_id]
            if theirs is None and invoice.status is not InvoiceStatus.VOID:
                invoice.status = InvoiceStatus.ERROR
                invoice.error_message = _missing_message(invoice.external_id or "")
                marked_error.append(invoice.id)
                needs_you.append(
                    f"@{invoice.buyer_handle}'s invoice is gone from Stripe: it is marked "
                    "Error; Regenerate it to invoice them again."
                )
            elif theirs is not None:
                invoicing.apply_stripe_truth(invoice, theirs)
            row.resolved_at, row.resolved_by = now, actor.label
            fixed.append(row.id)
        if fixed or marked_error:
            audit.record(
                session,
                actor=actor,
                action="invoices.reconcile_fix",
                target=f"show:{show_id}",
                details={"fixed": fixed, "marked_error": marked_error},
            )
        if not _open_rows(session, show_id):
            _resolve_alert(session, workspace_id=actor.workspace_id, show_id=show_id)
    return FixResult(fixed=len(fixed), needs_you=list(dict.fromkeys(needs_you)))


# -- the hourly check -------------------------------------------------------------------------


def _recent_shows(session: Session, now: dt.datetime) -> list[tuple[int, int]]:
    """(workspace, show) pairs with invoices made in the last 30 days, where Stripe is active."""
    active = select(Integration.workspace_id).where(
        Integration.provider == "stripe", Integration.status == IntegrationStatus.ACTIVE
    )
    return [
        (int(ws), int(show or 0))
        for ws, show in session.execute(
            select(Invoice.workspace_id, Invoice.show_id)
            .where(
                Invoice.created_at >= now - RECENT,
                Invoice.show_id.is_not(None),
                Invoice.workspace_id.in_(active),
            )
            .distinct()
            .order_by(Invoice.workspace_id, Invoice.show_id)
        )
    ]


def reconcile_recent(engine: Engine, *, now: dt.datetime | None = None) -> int:
    """Reconcile every recent show; one alert per show with new differences. Alerts raised."""
    with session_scope(engine) as session:
        shows = _recent_shows(session, now or utcnow())
    raised = 0
    skipped: set[int] = set()
    for workspace_id, show_id in shows:
        if workspace_id in skipped:
            continue
        try:
            found = _run_for_show(engine, workspace_id=workspace_id, show_id=show_id)
        except (ProviderError, NotFound) as exc:
            # The key was revoked or Stripe is down: the rest of this workspace would fail the
            # same way. Provider health alerts cover an outage; the next hour tries again.
            log.warning(
                "reconciliation.skipped",
                workspace_id=workspace_id,
                show_id=show_id,
                reason=str(exc),
            )
            skipped.add(workspace_id)
            continue
        new = [f for f in found if f.new]
        if new:
            with session_scope(engine) as session:
                raised += _alert(session, workspace_id, show_id, new)
    return raised


def _alert(session: Session, workspace_id: int, show_id: int, new: list[Finding]) -> bool:
    title = session.scalar(select(Show.title).where(Show.id == show_id)) or f"#{show_id}"
    count = f"{len(new)} difference{'s' if len(new) != 1 else ''}"
    return incidents.raise_incident(
        session,
        workspace_id=workspace_id,
        rule=ALERT_TYPE,
        entity_type="show",
        entity_id=str(show_id),
        priority=AlertPriority.NORMAL,
        message=f"Reconciliation found {count} between our invoices and Stripe's in "
        f"“{title}” ({new[0].summary}) Open the show's Invoices tab and press Fix.",
    ).new
