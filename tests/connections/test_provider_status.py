"""Issue 11, point 2: an outage never declares Stripe disconnected. A "Test connection" during
a Stripe outage (through the real SDK to the sandbox's outage switch) keeps the integration
Active and the show says "Stripe is unavailable; work is waiting"; only a refused key turns it
Error, from a test or from a job (audited); a later call that succeeds brings it back."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.connections import credentials, provider_status, providers, views
from backend.connections import service as connections
from backend.integrations.errors import ProviderUnavailable
from backend.invoicing import service as invoicing
from backend.platform import audit
from backend.platform.errors import NotFound
from models import AuditLog, Integration, IntegrationStatus, Invoice, InvoiceStatus, OutboxJob
from tests.support.shop import Shop
from tests.support.shows import make_show


def _integration(session: Session, shop: Shop) -> Integration:
    return session.scalars(
        select(Integration).where(
            Integration.workspace_id == shop.workspace_id, Integration.provider == "stripe"
        )
    ).one()


def _test(shop: Shop) -> views.ConnectResult:
    return connections.test(
        shop.engine,
        actor=shop.owner,
        provider_slug="stripe",
        context=providers.provider_context("stripe", shop.engine, workspace_id=shop.workspace_id),
    )


def _actions(shop: Shop) -> list[str]:
    with Session(shop.engine) as session:
        return [
            row.action
            for row in audit.for_target(
                session, workspace_id=shop.workspace_id, target="integration:stripe"
            )
        ][::-1]


def test_a_test_during_an_outage_keeps_stripe_connected_and_says_it_is_unavailable(
    shop: Shop,
) -> None:
    show = make_show(shop.engine, workspace_id=shop.workspace_id, buyers=2)
    shop.sandbox.switch(stripe={"outage": "errors"})
    try:
        result = _test(shop)
        assert not result.ok and result.status is IntegrationStatus.ACTIVE
        assert "Stripe is unavailable" in result.message and "answered 500" in result.message
        with Session(shop.engine) as session:
            assert _integration(session, shop).status is IntegrationStatus.ACTIVE
            state = provider_status.state(
                session, workspace_id=shop.workspace_id, provider="stripe"
            )
            assert state.state == provider_status.UNAVAILABLE
            assert state.message.startswith("Stripe is unavailable; work is waiting")
            # Work may still be queued: it waits for Stripe instead of being refused.
            assert invoicing.generate_all(session, actor=shop.owner, show_id=show.id) == 2
            session.commit()
        shop.drain(rounds=1)
        errors = shop.job_errors()
        assert errors and all(e.startswith("Stripe answered 500: ") for e in errors)
        assert not any("NotFound" in e or "Error:" in e for e in errors)
    finally:
        shop.sandbox.switch(stripe={"outage": "none"})

    # Stripe is back: the next test passes, the state clears and the waiting jobs are due now.
    assert _test(shop).ok
    with Session(shop.engine) as session:
        state = provider_status.state(session, workspace_id=shop.workspace_id, provider="stripe")
        assert state.state == provider_status.READY and state.message == ""
    shop.drain()
    assert {i.status for i in shop.invoices(show.id)} == {InvoiceStatus.SENT}
    assert "integration.refused" not in _actions(shop)


def test_a_timeout_is_said_as_one_and_keeps_stripe_connected(shop: Shop) -> None:
    shop.sandbox.switch(stripe={"outage": "timeouts", "hang_seconds": 15})
    try:
        result = _test(shop)
    finally:
        shop.sandbox.switch(stripe={"outage": "none", "hang_seconds": 60})
    assert not result.ok and result.status is IntegrationStatus.ACTIVE
    assert "Stripe did not answer within 10 s" in result.message


def test_a_refused_key_marks_error_and_a_later_success_recovers_with_audit(shop: Shop) -> None:
    with Session(shop.engine) as session:
        credentials.seal(_integration(session, shop), {"secret_key": "sk_test_revoked000000"})
        session.commit()
    result = _test(shop)
    assert not result.ok and result.status is IntegrationStatus.ERROR
    assert "Stripe refused the key (401)" in result.message
    with Session(shop.engine) as session:
        state = provider_status.state(session, workspace_id=shop.workspace_id, provider="stripe")
        assert state.state == provider_status.REFUSED and "refused" in state.message
        credentials.seal(_integration(session, shop), {"secret_key": shop.key})
        session.commit()
    assert _test(shop).ok
    with Session(shop.engine) as session:
        assert _integration(session, shop).status is IntegrationStatus.ACTIVE
    assert _actions(shop)[-2:] == ["integration.refused", "integration.recovered"]


def test_a_job_refused_by_stripe_marks_error_and_a_later_job_recovers_it(shop: Shop) -> None:
    show = make_show(shop.engine, workspace_id=shop.workspace_id, buyers=1)
    with Session(shop.engine) as session:
        assert invoicing.generate_all(session, actor=shop.owner, show_id=show.id) == 1
        credentials.seal(_integration(session, shop), {"secret_key": "sk_test_revoked000000"})
        session.commit()
    shop.drain()
    [invoice] = shop.invoices(show.id)
    assert invoice.status is InvoiceStatus.ERROR
    assert (invoice.error_message or "").startswith("Stripe refused the key (401)")
    with Session(shop.engine) as session:
        row = _integration(session, shop)
        assert row.status is IntegrationStatus.ERROR and "401" in (row.last_error or "")
        refused = session.scalars(
            select(AuditLog).where(AuditLog.action == "integration.refused")
        ).one()
        assert refused.actor == "scheduler" and refused.workspace_id == shop.workspace_id
        # New work is refused in words while the key is refused; queued work still runs.
        with pytest.raises(NotFound, match="Stripe refused this workspace's credentials"):
            invoicing.generate_all(session, actor=shop.owner, show_id=show.id)
        credentials.seal(row, {"secret_key": shop.key})  # the key works again
        invoicing.retry(session, actor=shop.owner, invoice_id=invoice.id)
        session.commit()
    shop.drain()
    [invoice] = shop.invoices(show.id)
    assert invoice.status is InvoiceStatus.SENT
    with Session(shop.engine) as session:
        row = _integration(session, shop)
        assert row.status is IntegrationStatus.ACTIVE and row.last_error is None
        job = session.scalars(select(OutboxJob).where(OutboxJob.kind == invoicing.CREATE_KIND))
        assert [j.last_error for j in job] == [None]
        assert session.scalars(select(Invoice.status)).all() == [InvoiceStatus.SENT]
    assert _actions(shop)[-2:] == ["integration.refused", "integration.recovered"]


def test_an_outage_after_a_refused_key_keeps_the_reason_the_key_was_refused(shop: Shop) -> None:
    with Session(shop.engine) as session:
        credentials.seal(_integration(session, shop), {"secret_key": "sk_test_revoked000000"})
        session.commit()
    assert not _test(shop).ok
    with Session(shop.engine) as session:
        refused = _integration(session, shop).last_error
    assert refused is not None and "refused the key (401)" in refused
    # Then Stripe has an outage: a job's call fails with a 500.
    with Session(shop.engine) as session:
        provider_status.failed(
            session,
            workspace_id=shop.workspace_id,
            provider="stripe",
            error=ProviderUnavailable("Stripe answered 500: the sandbox is down"),
        )
        session.commit()
    with Session(shop.engine) as session:
        row = _integration(session, shop)
        assert row.status is IntegrationStatus.ERROR and row.last_error == refused
        state = provider_status.state(session, workspace_id=shop.workspace_id, provider="stripe")
    assert state.state == provider_status.REFUSED and "500" not in state.message
