"""Applying stored events in batches, as the scheduler does: one transaction for a batch of
``inbox.process`` jobs, events and invoices loaded for the whole batch, writes sent together.
The outcome must be the same as handling each event alone, in order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from backend import jobs  # noqa: F401 - loads every domain's jobs.py: the handlers
from backend.jobs.runner import Runner
from backend.platform import inbox
from models import (
    Buyer,
    EngagementEvent,
    InboundEvent,
    InboundStatus,
    IntegrationLog,
    Invoice,
    InvoiceStatus,
    JobStatus,
    OutboxJob,
)
from tests import factories


def _seed(engine: Engine, invoices: int, *, unknown_stripe_ids: tuple[int, ...] = ()) -> int:
    """A workspace with ``invoices`` sent invoices in_0… (one buyer each), except that the
    invoices numbered in ``unknown_stripe_ids`` have no Stripe id stored yet."""
    with Session(engine) as session:
        workspace = factories.workspace(session)
        for n in range(invoices):
            session.add(
                Buyer(workspace_id=workspace.id, platform_user_id=f"fb_{n}", handle=f"b{n}")
            )
            session.add(
                Invoice(
                    workspace_id=workspace.id,
                    provider="stripe",
                    external_id=None if n in unknown_stripe_ids else f"in_{n}",
                    buyer_handle=f"b{n}",
                    buyer_platform_id=f"fb_{n}",
                    status=InvoiceStatus.SENT,
                    amount_cents=1000 + n,
                    sent_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
                )
            )
        session.commit()
        return workspace.id


def _store(
    engine: Engine, workspace_id: int, events: list[tuple[str, str, dict[str, Any]]]
) -> None:
    """Store (event id, type, invoice object) events as the sidecar does, in this order."""
    with Session(engine) as session:
        for n, (event_id, event_type, obj) in enumerate(events):
            inbox.record(
                session,
                provider="stripe",
                external_id=event_id,
                event_type=event_type,
                workspace_id=workspace_id,
                integration_id=None,
                payload={
                    "id": event_id,
                    "type": event_type,
                    "created": 1_700_000_000 + n,
                    "data": {"object": obj},
                },
                received_at=dt.datetime(2026, 11, 2, tzinfo=dt.UTC) + dt.timedelta(seconds=n),
            )
        session.commit()


def _paid(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"in_{n}",
        "object": "invoice",
        "amount_paid": 1000 + n,
        "currency": "usd",
        "status_transitions": {"paid_at": 1_700_000_500},
        "metadata": {},
        **extra,
    }


def _run_as_one_batch(engine: Engine) -> int:
    """Run every stored job in one claim and one transaction; returns how many were done."""
    runner = Runner(engine, "test-worker", batch=1000, commit_seconds=3600)
    report = runner.run_once()
    assert report.claimed == report.done + report.retried + report.dead
    return report.done


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements sent on ``engine`` (an executemany counts once)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine, "before_cursor_execute", record)


def _count(engine: Engine, model: Any) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_batch_of_payments_is_applied_with_a_few_statements_not_a_few_per_event(
    engine: Engine, statements: list[str]
) -> None:
    workspace_id = _seed(engine, 60)
    _store(engine, workspace_id, [(f"evt_{n}", "invoice.paid", _paid(n)) for n in range(60)])
    statements.clear()

    assert _run_as_one_batch(engine) == 60

    # Reads: the circuits (for the claim), then per 32 jobs the events and the invoices with
    # their buyers; a query per event would be 60 at least.
    reads = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert len(reads) <= 6, reads
    if engine.dialect.name == "postgresql":
        # Writes too: each kind is one multi-row statement per flush (SQLite, in-process, is
        # sent inserts one row at a time by its driver, at no round-trip cost).
        assert len(statements) <= 20, statements
    with Session(engine) as session:
        invoices = session.scalars(select(Invoice).order_by(Invoice.id)).all()
        assert {invoice.status for invoice in invoices} == {InvoiceStatus.PAID}
        assert all(invoice.paid_at is not None for invoice in invoices)
        engagement = session.scalars(select(EngagementEvent)).all()
        buyers = {b.platform_user_id: b.id for b in session.scalars(select(Buyer))}
        assert sorted(e.source_event_id for e in engagement) == sorted(
            f"evt_{n}" for n in range(60)
        )
        for row in engagement:
            n = int(row.source_event_id.removeprefix("evt_"))
            assert row.subject_id == buyers[f"fb_{n}"]
            assert row.properties["amount_cents"] == 1000 + n
        handled = session.scalars(select(InboundEvent.status)).all()
        assert set(handled) == {InboundStatus.HANDLED}
    # Handling a webhook calls no provider: nothing for the call log.
    assert _count(engine, IntegrationLog) == 0


def test_events_about_one_invoice_in_one_batch_end_as_if_sent_one_by_one(engine: Engine) -> None:
    # Invoice 0: paid, then a late finalized and sent (must stay paid). Invoice 1: its Stripe
    # id not stored yet; the first event names our row in its metadata, the next one carries
    # only Stripe's id (it must find the id the first one just gave it). Invoice 2: a payment
    # failed, then a late "sent" (the failure stays shown).
    workspace_id = _seed(engine, 3, unknown_stripe_ids=(1,))
    with Session(engine) as session:
        row_1 = session.scalars(select(Invoice.id).where(Invoice.buyer_platform_id == "fb_1")).one()
    _store(
        engine,
        workspace_id,
        [
            ("evt_a", "invoice.paid", _paid(0)),
            ("evt_b", "invoice.finalized", _paid(0)),
            ("evt_c", "invoice.sent", _paid(0)),
            ("evt_d", "invoice.finalized", _paid(1, metadata={"hub_invoice_id": str(row_1)})),
            ("evt_e", "invoice.paid", _paid(1)),
            ("evt_f", "invoice.payment_failed", {**_paid(2), "attempt_count": 1}),
            ("evt_g", "invoice.sent", _paid(2)),
            ("evt_h", "invoice.paid", _paid(99)),  # not ours
        ],
    )

    assert _run_as_one_batch(engine) == 8

    with Session(engine) as session:
        by_buyer = {i.buyer_platform_id: i for i in session.scalars(select(Invoice))}
        assert by_buyer["fb_0"].status is InvoiceStatus.PAID
        assert by_buyer["fb_1"].status is InvoiceStatus.PAID
        assert by_buyer["fb_1"].external_id == "in_1"
        assert by_buyer["fb_2"].status is InvoiceStatus.SENT
        assert "attempt 1" in (by_buyer["fb_2"].error_message or "")
        names = sorted(
            (e.source_event_id, e.name) for e in session.scalars(select(EngagementEvent))
        )
        assert names == [
            ("evt_a", "invoice.paid"),
            ("evt_e", "invoice.paid"),
            ("evt_f", "invoice.payment_failed"),
        ]
        assert set(session.scalars(select(InboundEvent.status))) == {InboundStatus.HANDLED}


def test_a_malformed_event_fails_alone_and_the_rest_of_its_batch_is_applied(
    engine: Engine,
) -> None:
    workspace_id = _seed(engine, 4)
    _store(
        engine,
        workspace_id,
        [
            ("evt_0", "invoice.paid", _paid(0)),
            ("evt_bad", "invoice.paid", "not an invoice"),  # type: ignore[list-item]
            ("evt_2", "invoice.paid", _paid(2)),
            ("evt_3", "invoice.paid", _paid(3)),
        ],
    )

    assert _run_as_one_batch(engine) == 3

    with Session(engine) as session:
        paid = set(
            session.scalars(select(Invoice.external_id).where(Invoice.status == InvoiceStatus.PAID))
        )
        assert paid == {"in_0", "in_2", "in_3"}
        bad = session.scalars(
            select(InboundEvent).where(InboundEvent.external_id == "evt_bad")
        ).one()
        assert bad.status is InboundStatus.PENDING
        job = session.scalars(
            select(OutboxJob).where(OutboxJob.idempotency_key == "inbox:stripe:evt_bad")
        ).one()
        assert job.status is JobStatus.PENDING and "handler failed" in (job.last_error or "")
    assert _count(engine, EngagementEvent) == 3
