"""Provider health alerts: raised once when most of a workspace's calls to a provider fail."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.health import checks
from models import Alert, IntegrationLog, utcnow
from tests import factories


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
    assert checks.check_provider_health(session, now=now) == 1
    assert checks.check_provider_health(session, now=now) == 0  # told once
    session.commit()
    alert = session.scalars(select(Alert)).one()
    assert alert.entity_id == "sendgrid" and "7 of 12" in alert.message
