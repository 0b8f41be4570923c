"""The night shift: provider health alerts (once), retention, the orphaned-contract sweep, and
exclusive periodic jobs on PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from backend.platform import periodic as registry
from backend.platform import retention as maintenance
from models import (
    Alert,
    Client,
    Contract,
    ContractStatus,
    Event,
    InboundEvent,
    InboundStatus,
    IntegrationLog,
    JobStatus,
    OutboxJob,
    Payment,
    PaymentKind,
    PaymentStatus,
    utcnow,
)
from tests import factories


def _count(session: Session, model: object) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


def test_provider_failing_over_half_raises_one_alert(session: Session) -> None:
    ws = factories.workspace(session)
    now = utcnow()
    for n in range(12):
        session.add(
            IntegrationLog(
                workspace_id=ws.id,
                provider="sendgrid",
                operation="send",
                status="ok" if n < 5 else "error",
                at=now,
            )
        )
    for _ in range(12):
        session.add(
            IntegrationLog(
                workspace_id=ws.id, provider="stripe", operation="x", status="ok", at=now
            )
        )
    session.commit()
    assert maintenance.check_provider_health(session, now=now) == 1
    assert maintenance.check_provider_health(session, now=now) == 0  # told once
    session.commit()
    alert = session.scalars(select(Alert)).one()
    assert alert.entity_id == "sendgrid" and "7 of 12" in alert.message


def test_retention_keeps_what_still_needs_attention(session: Session) -> None:
    old = utcnow() - dt.timedelta(days=60)
    session.add_all(
        [
            OutboxJob(kind="k", idempotency_key="done-old", status=JobStatus.DONE, finished_at=old),
            OutboxJob(kind="k", idempotency_key="dead-old", status=JobStatus.DEAD, finished_at=old),
            OutboxJob(
                kind="k", idempotency_key="done-new", status=JobStatus.DONE, finished_at=utcnow()
            ),
            InboundEvent(
                provider="stripe",
                external_id="e1",
                event_type="t",
                payload={},
                status=InboundStatus.HANDLED,
                received_at=old,
            ),
            InboundEvent(
                provider="stripe",
                external_id="e2",
                event_type="t",
                payload={},
                status=InboundStatus.PENDING,
                received_at=old,
            ),
        ]
    )
    session.commit()
    counts = maintenance.purge_old_rows(session)
    session.commit()
    assert counts["outbox_jobs"] == 1 and counts["inbound_events"] == 1
    assert set(session.scalars(select(OutboxJob.idempotency_key))) == {"dead-old", "done-new"}
    assert set(session.scalars(select(InboundEvent.external_id))) == {"e2"}


def test_signed_paid_contract_without_event_is_reported_once(session: Session) -> None:
    ws = factories.workspace(session)
    client = Client(workspace_id=ws.id, name="K", email="k@example.com")
    session.add(client)
    session.flush()
    contracts = []
    for title in ("Orphan", "Handed off", "Unpaid"):
        contract = Contract(
            workspace_id=ws.id,
            client_id=client.id,
            title=title,
            status=ContractStatus.SIGNED,
            service_type="recital",
        )
        session.add(contract)
        session.flush()
        contracts.append(contract)
        session.add(
            Payment(
                workspace_id=ws.id,
                contract_id=contract.id,
                amount_cents=100,
                kind=PaymentKind.DEPOSIT,
                status=PaymentStatus.PENDING if title == "Unpaid" else PaymentStatus.PAID,
            )
        )
    session.add(
        Event(workspace_id=ws.id, contract_id=contracts[1].id, title="E", service_type="recital")
    )
    session.commit()
    assert maintenance.sweep_orphaned_contracts(session) == 1
    assert maintenance.sweep_orphaned_contracts(session) == 0
    session.commit()
    alert = session.scalars(select(Alert)).one()
    assert alert.entity_id == str(contracts[0].id) and "Orphan" in alert.message


def test_exclusive_job_skips_a_tick_while_another_process_holds_it(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = pg_engine
    monkeypatch.setattr(registry, "get_engine", lambda: engine)
    ran: list[str] = []
    key = registry.advisory_key("night-job")
    with engine.connect() as other:
        other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        assert registry.run_exclusively("night-job", lambda: ran.append("a")) is False
        other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        other.commit()
    assert registry.run_exclusively("night-job", lambda: ran.append("b")) is True
    assert ran == ["b"]
