"""Issue 11, point 10: the Health page's "Providers now": an open breaker and the work waiting
on it show at once, while the 24-hour success rate still looks fine."""

from __future__ import annotations

from sqlalchemy.orm import Session

from backend.connections import provider_status
from backend.health import service as health
from backend.invoicing import buyers
from backend.platform import circuits
from models import Buyer, Integration, IntegrationLog, IntegrationStatus, utcnow
from tests import factories


def test_an_open_breaker_and_the_jobs_waiting_on_it_show_now(session: Session) -> None:
    ws = factories.workspace(session)
    session.add(
        Integration(
            workspace_id=ws.id,
            provider="stripe",
            display_name="Stripe",
            status=IntegrationStatus.ACTIVE,
        )
    )
    for n in range(3):
        buyer = Buyer(workspace_id=ws.id, platform_user_id=f"fb_{n}", handle=f"b{n}")
        session.add(buyer)
        session.flush()
        buyers.request_customer_sync(session, buyer=buyer)
    # A good day so far: 98 of 100 calls fine.
    for n in range(100):
        session.add(
            IntegrationLog(
                workspace_id=ws.id,
                provider="stripe",
                operation="call",
                status="ok" if n >= 2 else "error",
                latency_ms=40,
                at=utcnow(),
            )
        )
    for _ in range(circuits.POLICY.consecutive_failures):
        circuits.record(session, provider="stripe", ok=False, error="Stripe answered 500: down")
    session.commit()

    [rate] = health.provider_health(session, workspace_id=ws.id)
    assert rate.success_rate == 0.98  # what the page showed, and all it showed
    [stripe] = health.providers_now(session, workspace_id=ws.id)
    assert stripe.name == "Stripe" and stripe.breaker == "open" and stripe.opened_until
    assert stripe.waiting == 3 and stripe.troubled
    assert stripe.state == provider_status.UNAVAILABLE
    assert stripe.message.startswith("Stripe is unavailable; work is waiting (3 jobs queued)")
    assert stripe.last_error == "Stripe answered 500: down"

    circuits.record(session, provider="stripe", ok=True)
    session.commit()
    [stripe] = health.providers_now(session, workspace_id=ws.id)
    assert stripe.breaker == "closed" and not stripe.troubled and stripe.waiting == 3
