"""Work for Stripe is refused in words while Stripe is switched off (a downgrade to Free, a
disconnect), not queued to fail: retrying a failed invoice and regenerating the invoices of a
repriced item, as generating and voiding already were. Found by the isolation matrix's plan
cells (tests/security/test_isolation_matrix.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from backend.invoicing import panel as invoice_panel
from backend.invoicing import service as invoicing
from backend.platform.actors import Actor
from backend.platform.errors import NotFound
from models import (
    Integration,
    IntegrationStatus,
    Invoice,
    InvoiceStatus,
    JobStatus,
    OutboxJob,
    Plan,
    Role,
)
from tests import factories
from tests.support.shows import make_show


def _invoice(session: Session, show_id: int, ws: int, pid: str, status: InvoiceStatus) -> Invoice:
    sent = status is InvoiceStatus.SENT
    row = Invoice(
        workspace_id=ws,
        show_id=show_id,
        provider="stripe",
        external_id="in_old" if sent else None,
        buyer_handle=pid,
        buyer_platform_id=pid,
        status=status,
        # Item 1 at 1000, before it was repriced (it costs 500 now).
        line_items=[{"number": 1, "quantity": 1, "unit_price_cents": 1000}] if sent else [],
    )
    session.add(row)
    session.flush()
    return row


def _shop(engine: Engine, stripe: IntegrationStatus) -> tuple[Actor, int, int]:
    """A workspace whose Stripe is ``stripe``: a failed invoice with its dead job, a sent one
    with item 1 at its old price. (owner, failed invoice id, item 1's id)."""
    with Session(engine) as session:
        ws = factories.workspace(session, plan=Plan.FREE)
        owner = factories.member(session, ws, email="owner@shop.example", role=Role.OWNER)
        session.add(
            Integration(workspace_id=ws.id, provider="stripe", display_name="Stripe", status=stripe)
        )
        session.commit()
        actor = Actor(owner.id, ws.id, Role.OWNER)
    show = make_show(engine, workspace_id=actor.workspace_id, buyers=2, claims_per_buyer=1)
    with Session(engine) as session:
        failed = _invoice(session, show.id, actor.workspace_id, show.buyers[1], InvoiceStatus.ERROR)
        _invoice(session, show.id, actor.workspace_id, show.buyers[0], InvoiceStatus.SENT)
        session.add(
            OutboxJob(
                workspace_id=actor.workspace_id,
                kind=invoicing.CREATE_KIND,
                provider="stripe",
                idempotency_key=invoice_panel.job_key(failed.id),
                status=JobStatus.DEAD,
            )
        )
        session.commit()
        return actor, failed.id, show.item_ids[0]


def _pending_jobs(engine: Engine) -> int:
    with Session(engine) as session:
        found = session.scalar(select(func.count()).where(OutboxJob.status == JobStatus.PENDING))
        return int(found or 0)


def test_retry_and_reprice_are_refused_while_stripe_is_switched_off(engine: Engine) -> None:
    actor, failed, item = _shop(engine, IntegrationStatus.INACTIVE)
    with Session(engine) as session:
        with pytest.raises(NotFound, match="not connected"):
            invoicing.retry(session, actor=actor, invoice_id=failed)
        with pytest.raises(NotFound, match="not connected"):
            invoicing.regenerate_for_item(session, actor=actor, item_id=item)
        session.commit()
    assert _pending_jobs(engine) == 0
    with Session(engine) as session:
        assert session.get_one(Invoice, failed).status is InvoiceStatus.ERROR

    # Switched on again, both queue their work.
    with Session(engine) as session:
        session.execute(update(Integration).values(status=IntegrationStatus.ACTIVE))
        invoicing.retry(session, actor=actor, invoice_id=failed)
        assert invoicing.regenerate_for_item(session, actor=actor, item_id=item).regenerating == 1
        session.commit()
    assert _pending_jobs(engine) == 2
