"""The sweep for signed, paid contracts that never became an event: one alert each."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.pipeline import orphaned_contracts
from models import (
    Alert,
    Client,
    Contract,
    ContractStatus,
    Event,
    Payment,
    PaymentKind,
    PaymentStatus,
)
from tests import factories


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
    assert orphaned_contracts.sweep_orphaned_contracts(session) == 1
    assert orphaned_contracts.sweep_orphaned_contracts(session) == 0
    session.commit()
    alert = session.scalars(select(Alert)).one()
    assert alert.entity_id == str(contracts[0].id) and "Orphan" in alert.message
