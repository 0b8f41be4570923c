"""What waits on a provider, in the business's words: "31 invoices of show Spring Drop, 12
emails", from the workspace's pending and running outbox jobs, counted in one grouped query.

Invoice jobs carry only their invoice's id (``payload["invoice_id"]``); the query joins the
invoice and its show so that the invoices are counted per show, which is where an operator
sees them. Every other kind is counted as a whole.

Tested in tests/health/test_impact.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from backend.connections.stripe_webhook_setup import REGISTER_KIND
from backend.email.service import SEND_KIND as EMAIL_SEND_KIND
from backend.invoicing.buyers import SYNC_CUSTOMER
from backend.invoicing.checkout_links import SEND_KIND
from backend.invoicing.service import CREATE_KIND, VOID_KIND
from backend.platform.incident_notify import SLACK_KIND
from models import Invoice, JobStatus, OutboxJob, Show

# The kinds whose payload names an invoice: counted per show.
INVOICE_KINDS = (CREATE_KIND, VOID_KIND, SEND_KIND)
# What one job of a kind is to the business (singular, plural).
NOUNS: dict[str, tuple[str, str]] = {
    CREATE_KIND: ("invoice", "invoices"),
    VOID_KIND: ("invoice to void", "invoices to void"),
    SEND_KIND: ("checkout link", "checkout links"),
    SYNC_CUSTOMER: ("buyer to sync", "buyers to sync"),
    REGISTER_KIND: ("webhook registration", "webhook registrations"),
    SLACK_KIND: ("alert message", "alert messages"),
    # Every e-mail (alerts' included since issue 15) is one ``email.send`` job through SendGrid.
    EMAIL_SEND_KIND: ("email", "emails"),
}
WAITING = (JobStatus.PENDING, JobStatus.RUNNING)


@dataclass(frozen=True, slots=True)
class Waiting:
    """Jobs of one kind (and, for invoices, one show) waiting on a provider."""

    provider: str
    kind: str
    count: int
    show_id: int | None = None
    show_title: str | None = None

    @property
    def text(self) -> str:
        one, many = NOUNS.get(self.kind, (f"{self.kind} job", f"{self.kind} jobs"))
        words = f"{self.count} {one if self.count == 1 else many}"
        if self.show_title is not None:
            words += f" of show {self.show_title}"
        return words


def waiting_on(
    session: Session, *, workspace_id: int, providers: Sequence[str]
) -> dict[str, list[Waiting]]:
    """Per provider, what the workspace's waiting jobs are for, the largest group first."""
    if not providers:
        return {}
    invoice_id = OutboxJob.payload["invoice_id"].as_integer()
    rows = session.execute(
        select(OutboxJob.provider, OutboxJob.kind, Invoice.show_id, Show.title, func.count())
        .select_from(OutboxJob)
        .outerjoin(
            Invoice,
            and_(
                OutboxJob.kind.in_(INVOICE_KINDS),
                Invoice.id == invoice_id,
                # The job's own workspace's invoice, whatever a payload says.
                Invoice.workspace_id == OutboxJob.workspace_id,
            ),
        )
        .outerjoin(Show, Show.id == Invoice.show_id)
        .where(
            OutboxJob.workspace_id == workspace_id,
            OutboxJob.provider.in_(list(providers)),
            OutboxJob.status.in_(WAITING),
        )
        .group_by(OutboxJob.provider, OutboxJob.kind, Invoice.show_id, Show.title)
    ).all()
    found: dict[str, list[Waiting]] = defaultdict(list)
    for provider, kind, show_id, title, count in rows:
        found[str(provider)].append(Waiting(str(provider), kind, int(count), show_id, title))
    for items in found.values():
        items.sort(key=lambda w: (-w.count, w.kind, w.show_title or ""))
    return dict(found)


def summary(items: Sequence[Waiting]) -> str:
    """ "31 invoices of show Spring Drop, 12 emails" (empty when nothing waits)."""
    return ", ".join(w.text for w in items)
