"""Reconciliation against the Stripe sandbox through the real SDK: a dropped webhook (the
sandbox delivers to a test receiver, never to us), a void made in Stripe's dashboard, amounts,
an invoice gone from Stripe, one Stripe made that we never linked, no duplicate findings, and
the hourly job's alert."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend import db
from backend.invoicing import reconciliation
from backend.invoicing import service as invoicing
from backend.platform import periodic as registry
from backend.platform.actors import Actor
from backend.platform.errors import PermissionDenied
from models import Alert, AlertState, AuditLog, Invoice, InvoiceDiscrepancy, InvoiceStatus, Role
from tests.sandbox.stripe_support import client
from tests.support.shop import Shop
from tests.support.shows import MadeShow, make_show


def _invoiced_show(shop: Shop, buyers: int = 2) -> tuple[MadeShow, list[Invoice]]:
    show = make_show(shop.engine, workspace_id=shop.workspace_id, buyers=buyers)
    with Session(shop.engine) as session:
        invoicing.generate_all(session, actor=shop.owner, show_id=show.id)
        session.commit()
    shop.drain()
    invoices = shop.invoices(show.id)
    assert [i.status for i in invoices] == [InvoiceStatus.SENT] * buyers
    return show, invoices


def _run(shop: Shop, show: MadeShow) -> list[reconciliation.Finding]:
    return reconciliation.run_for_show(shop.engine, actor=shop.owner, show_id=show.id)


def _fix(shop: Shop, show: MadeShow) -> reconciliation.FixResult:
    return reconciliation.fix_all(shop.engine, actor=shop.owner, show_id=show.id)


def _in_stripe(shop: Shop, external_id: str) -> Any:
    return client(shop.sandbox.url, shop.key).v1.invoices.retrieve(external_id)


def _pay_on_hosted_page(invoice: Invoice) -> None:
    """What the buyer does: press Pay on the hosted invoice page. Stripe's invoice.paid goes to
    the sandbox's test receiver, not to our sidecar: the webhook is dropped."""
    assert invoice.external_url
    response = httpx.post(f"{invoice.external_url}/pay", timeout=10)
    assert response.status_code == 303 and "error=" not in response.headers["location"]


def _discrepancies(shop: Shop) -> list[InvoiceDiscrepancy]:
    with Session(shop.engine) as session:
        return list(session.scalars(select(InvoiceDiscrepancy).order_by(InvoiceDiscrepancy.id)))


def test_a_dropped_paid_webhook_is_listed_fixed_in_one_click_and_then_gone(shop: Shop) -> None:
    show, (paid, _other) = _invoiced_show(shop)
    _pay_on_hosted_page(paid)
    assert _in_stripe(shop, paid.external_id or "").status == "paid"
    assert shop.invoices(show.id)[0].status is InvoiceStatus.SENT  # we were never told

    (finding,) = _run(shop, show)
    assert (finding.invoice_id, finding.field, finding.ours, finding.theirs) == (
        paid.id,
        "status",
        "sent",
        "paid",
    )
    assert finding.new and finding.fixable
    assert finding.summary == f"@{paid.buyer_handle}: Stripe says paid, we say sent."
    with Session(shop.engine) as session:
        listed = reconciliation.open_findings(
            session, workspace_id=shop.workspace_id, show_id=show.id
        )
    assert [f.id for f in listed] == [finding.id] and not listed[0].new

    result = _fix(shop, show)
    assert (result.fixed, result.needs_you) == (1, [])
    assert result.message == "Fixed 1 difference."
    now_paid = shop.invoices(show.id)[0]
    assert now_paid.status is InvoiceStatus.PAID and now_paid.paid_at is not None
    (row,) = _discrepancies(shop)
    assert row.resolved_at is not None and row.resolved_by == shop.owner.label
    with Session(shop.engine) as session:
        audit = session.scalars(
            select(AuditLog).where(AuditLog.action == "invoices.reconcile_fix")
        ).one()
        assert audit.target == f"show:{show.id}" and audit.details["fixed"] == [finding.id]

    assert _run(shop, show) == []
    assert len(_discrepancies(shop)) == 1


def test_a_void_made_in_stripes_dashboard_is_found_and_fixed(shop: Shop) -> None:
    show, (_first, voided) = _invoiced_show(shop)
    client(shop.sandbox.url, shop.key).v1.invoices.void_invoice(voided.external_id or "")

    (finding,) = _run(shop, show)
    assert (finding.invoice_id, finding.field, finding.ours, finding.theirs) == (
        voided.id,
        "status",
        "sent",
        "void",
    )
    assert _fix(shop, show).fixed == 1
    assert [i.status for i in shop.invoices(show.id)] == [InvoiceStatus.SENT, InvoiceStatus.VOID]
    assert _run(shop, show) == []


def test_an_amount_difference_is_found_and_stripes_amount_kept(shop: Shop) -> None:
    show, (first, _second) = _invoiced_show(shop)
    stripe_amount = first.amount_cents
    with Session(shop.engine) as session:
        session.get_one(Invoice, first.id).amount_cents = stripe_amount + 250
        session.commit()

    (finding,) = _run(shop, show)
    assert finding.field == "amount"
    assert finding.ours == f"{(stripe_amount + 250) / 100:.2f} USD"
    assert finding.theirs == f"{stripe_amount / 100:.2f} USD"
    assert finding.summary.startswith(f"@{first.buyer_handle}: Stripe's amount is ")
    assert _fix(shop, show).fixed == 1
    assert shop.invoices(show.id)[0].amount_cents == stripe_amount
    assert _run(shop, show) == []


def test_running_twice_keeps_one_finding_and_one_that_no_longer_holds_is_resolved(
    shop: Shop,
) -> None:
    show, (paid, _other) = _invoiced_show(shop)
    _pay_on_hosted_page(paid)
    (first,) = _run(shop, show)
    (again,) = _run(shop, show)
    assert again.id == first.id and first.new and not again.new
    assert len(_discrepancies(shop)) == 1

    # The webhook arrives late after all: the difference is gone without anyone fixing it.
    with Session(shop.engine) as session:
        invoicing.raise_status(session.get_one(Invoice, paid.id), InvoiceStatus.PAID)
        session.commit()
    assert _run(shop, show) == []
    (row,) = _discrepancies(shop)
    assert row.resolved_by == "gone" and row.resolved_at is not None


def test_an_invoice_gone_from_stripe_turns_error_and_can_be_regenerated(shop: Shop) -> None:
    show, (gone, _kept) = _invoiced_show(shop)
    # Stripe's dashboard deletes it (the sandbox has no delete for finalized invoices, as
    # Stripe only deletes drafts; remove it from the emulator's state instead).
    with shop.sandbox.ctx.store.section("stripe") as state:
        for objects in state["objects"].values():
            objects.get("invoice", {}).pop(gone.external_id, None)

    (finding,) = _run(shop, show)
    assert (finding.field, finding.ours, finding.theirs) == ("missing", "sent", "not in Stripe")
    assert gone.external_id and gone.external_id in finding.summary

    result = _fix(shop, show)
    assert result.fixed == 1
    assert result.needs_you == [
        f"@{gone.buyer_handle}'s invoice is gone from Stripe: it is marked Error; Regenerate "
        "it to invoice them again."
    ]
    marked = shop.invoices(show.id)[0]
    assert marked.status is InvoiceStatus.ERROR
    assert "Regenerate" in (marked.error_message or "")
    assert _run(shop, show) == []  # already marked: not found again

    with Session(shop.engine) as session:
        invoicing.regenerate(session, actor=shop.owner, invoice_id=gone.id)
        session.commit()
    shop.drain()
    replacement = shop.invoices(show.id)[-1]
    assert (replacement.attempt, replacement.status) == (2, InvoiceStatus.SENT)
    assert _run(shop, show) == []


def test_an_invoice_stripe_made_that_we_never_stored_is_linked(shop: Shop) -> None:
    show, (lost, _other) = _invoiced_show(shop)
    # The job's last transaction never landed: Stripe has the invoice, our row does not know.
    with Session(shop.engine) as session:
        row = session.get_one(Invoice, lost.id)
        row.external_id, row.external_url = None, None
        row.status, row.error_message = InvoiceStatus.ERROR, "The worker stopped."
        session.commit()

    (finding,) = _run(shop, show)
    assert (finding.field, finding.ours, finding.theirs) == (
        "unlinked",
        "not linked",
        lost.external_id,
    )
    assert _fix(shop, show).fixed == 1
    linked = shop.invoices(show.id)[0]
    assert (linked.external_id, linked.external_url) == (lost.external_id, lost.external_url)
    assert linked.status is InvoiceStatus.SENT and linked.error_message is None
    assert _run(shop, show) == []


def test_the_hourly_job_is_registered_and_raises_one_alert_per_show(shop: Shop) -> None:
    (job,) = [j for j in registry.declared() if j.id == "invoice-reconciliation"]
    assert job.seconds == 3600 and job.exclusive
    _invoiced_show(shop)  # a show with nothing to report: no alert
    show, (paid, _other) = _invoiced_show(shop)
    _pay_on_hosted_page(paid)

    try:
        job.func()  # through the registry: the advisory lock on PostgreSQL
        job.func()
    finally:
        db.get_engine().dispose()
    with Session(shop.engine) as session:
        (alert,) = session.scalars(select(Alert)).all()
        assert (alert.workspace_id, alert.entity_type, alert.entity_id) == (
            shop.workspace_id,
            "show",
            str(show.id),
        )
        assert "1 difference" in alert.message and "press Fix" in alert.message
    assert len(_discrepancies(shop)) == 1
    assert reconciliation.reconcile_recent(shop.engine) == 0  # still open: not repeated

    _fix(shop, show)
    with Session(shop.engine) as session:
        state = session.scalar(select(Alert.state))
        count = session.scalar(select(func.count()).select_from(Alert))
    assert (state, count) == (AlertState.RESOLVED, 1)


def test_a_viewer_can_neither_check_nor_fix(shop: Shop) -> None:
    show, (paid, _other) = _invoiced_show(shop)
    _pay_on_hosted_page(paid)
    viewer = Actor(operator_id=2, workspace_id=shop.workspace_id, role=Role.VIEWER)
    with pytest.raises(PermissionDenied, match="check the invoices against Stripe"):
        reconciliation.run_for_show(shop.engine, actor=viewer, show_id=show.id)
    with Session(shop.engine) as session:
        assert session.scalar(select(func.count()).select_from(InvoiceDiscrepancy)) == 0
    _run(shop, show)
    with pytest.raises(PermissionDenied, match="fix reconciliation differences"):
        reconciliation.fix_all(shop.engine, actor=viewer, show_id=show.id)
    assert shop.invoices(show.id)[0].status is InvoiceStatus.SENT
