"""Reconciliation: our invoices of a show against Stripe's, on demand and hourly. The differences
(a missed webhook, a change made in Stripe's dashboard) are stored as findings until fixed.

Every function here takes the engine, not a session: Stripe is called between two short
transactions, never inside one (on SQLite an open transaction holds the database's write lock,
and the throttle before each call needs a transaction of its own).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.connections import providers
from backend.db import session_scope
from backend.integrations.errors import ProviderAuthFailed, ProviderError, ProviderRejected
from backend.integrations.stripe import StripeAdapter, StripeInvoice
from backend.invoicing import panel as invoice_panel
from backend.invoicing import service as invoicing
from backend.platform import alerts, audit
from backend.platform.actors import Actor
from backend.platform.errors import NotFound
from models import (
    Alert,
    AlertPriority,
    AlertState,
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

# What differs (InvoiceDiscrepancy.field).
STATUS = "status"
AMOUNT = "amount"
MISSING = "missing"  # our invoice's Stripe copy is gone
UNLINKED = "unlinked"  # Stripe has an invoice carrying our id that we never stored
DUPLICATE = "duplicate"  # Stripe has a second live invoice carrying our id
GONE = "gone"  # resolved_by of a finding that no longer held on a later run
ALERT_TYPE = "invoices.reconciliation"
RECENT = dt.timedelta(days=30)
_DEAD_IN_STRIPE = ("void", "uncollectible")


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


@dataclass(frozen=True)
class _Snapshot:
    """What Stripe said about the show's invoices, read with no transaction open."""

    by_id: dict[str, StripeInvoice]
    gone: set[str]  # our external ids Stripe answered 404 for
    by_hub_id: dict[int, list[StripeInvoice]]


# -- reading Stripe ---------------------------------------------------------------------------


def _retrieve(stripe: StripeAdapter, external_id: str) -> StripeInvoice | None:
    """Stripe's invoice, or None when Stripe says it does not exist."""
    try:
        return stripe.retrieve_invoice(external_id)
    except ProviderRejected as exc:
        if exc.status == 404 and not isinstance(exc, ProviderAuthFailed):
            return None
        raise


def _snapshot(
    stripe: StripeAdapter, *, workspace_id: int, show_id: int, external_ids: Iterable[str]
) -> _Snapshot:
    found = [
        invoice
        for invoice in stripe.invoices_with_metadata("hub_show_id", str(show_id))
        if invoice.metadata.get("hub_workspace_id") == str(workspace_id)
    ]
    by_id = {invoice.id: invoice for invoice in found}
    by_hub_id: dict[int, list[StripeInvoice]] = {}
    for invoice in found:
        hub_id = invoice.metadata.get("hub_invoice_id", "")
        if hub_id.isdigit():
            by_hub_id.setdefault(int(hub_id), []).append(invoice)
    gone: set[str] = set()
    # Search misses what its index has not caught up with (Stripe: up to a minute) and invoices
    # whose metadata was edited by hand: ask for each of ours by id before calling it missing.
    for external_id in sorted(set(external_ids) - by_id.keys()):
        retrieved = _retrieve(stripe, external_id)
        if retrieved is None:
            gone.add(external_id)
        else:
            by_id[retrieved.id] = retrieved
    return _Snapshot(by_id=by_id, gone=gone, by_hub_id=by_hub_id)


# -- comparing ----------------------------------------------------------------------------------


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:.2f} {currency.upper()}"


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


def _compare(
    invoices: list[Invoice], snapshot: _Snapshot, creating: set[int]
) -> tuple[dict[tuple[int, str], tuple[str, str]], set[int]]:
    """((invoice id, field) -> (ours, theirs)) for every difference, and the invoices this
    snapshot cannot judge (linked after it was taken): their open findings stay as they are."""
    wanted: dict[tuple[int, str], tuple[str, str]] = {}
    unknown: set[int] = set()
    for invoice in invoices:
        carrying = snapshot.by_hub_id.get(invoice.id, [])
        if invoice.external_id is None:
            if invoice.id in creating:
                unknown.add(invoice.id)
                continue
            if carrying:
                chosen = _prefer_live(carrying)
                wanted[(invoice.id, UNLINKED)] = ("not linked", chosen.id)
                carrying = [c for c in carrying if c.id != chosen.id]
        else:
            theirs = snapshot.by_id.get(invoice.external_id)
            if theirs is not None:
                status = invoicing.STRIPE_STATUS.get(theirs.status)
                if status is not None and status is not invoice.status:
                    wanted[(invoice.id, STATUS)] = (invoice.status.value, status.value)
                if theirs.amount_due != invoice.amount_cents:
                    wanted[(invoice.id, AMOUNT)] = (
                        _money(invoice.amount_cents, invoice.currency),
                        _money(theirs.amount_due, theirs.currency),
                    )
            elif invoice.external_id in snapshot.gone:
                # A void invoice has nothing left to collect; an Error one was already marked.
                if invoice.status not in (InvoiceStatus.VOID, InvoiceStatus.ERROR):
                    wanted[(invoice.id, MISSING)] = (invoice.status.value, "not in Stripe")
            else:
                unknown.add(invoice.id)
                continue
        extra = sorted(
            c.id
            for c in carrying
            if c.id != invoice.external_id and c.status not in _DEAD_IN_STRIPE
        )
        if extra:
            wanted[(invoice.id, DUPLICATE)] = (invoice.external_id or "ours", ", ".join(extra))
    return {k: (o[:200], t[:200]) for k, (o, t) in wanted.items()}, unknown


def _prefer_live(candidates: list[StripeInvoice]) -> StripeInvoice:
    live = [c for c in candidates if c.status not in _DEAD_IN_STRIPE]
    return sorted(live or candidates, key=lambda c: c.id)[0]


# -- storing ----------------------------------------------------------------------------------


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
    for alert in session.scalars(
        select(Alert).where(
            Alert.workspace_id == workspace_id,
            Alert.type == ALERT_TYPE,
            Alert.entity_type == "show",
            Alert.entity_id == str(show_id),
            Alert.state != AlertState.RESOLVED,
        )
    ):
        alert.state, alert.resolved_at = AlertState.RESOLVED, utcnow()


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

    snapshot = _snapshot(
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
        wanted, unknown = _compare(invoices, snapshot, creating)
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
    fresh: dict[str, StripeInvoice | None] = {
        external_id: _retrieve(stripe, external_id) for external_id in sorted(wanted)
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
    return alerts.raise_once(
        session,
        workspace_id=workspace_id,
        type_=ALERT_TYPE,
        entity_type="show",
        entity_id=str(show_id),
        priority=AlertPriority.NORMAL,
        message=f"Reconciliation found {count} between our invoices and Stripe's in "
        f"“{title}” ({new[0].summary}) Open the show's Invoices tab and press Fix.",
    )
