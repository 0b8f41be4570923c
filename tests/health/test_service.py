"""Issue 11, point 10, on issue 14's tiles: an open breaker and the work waiting on it show at
once, while the day's success rate still looks fine; and another workspace's outage is never
shown."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from backend.connections import provider_status
from backend.health import service as health
from backend.health import tiles
from backend.invoicing import buyers
from backend.platform import circuits
from models import (
    Alert,
    AlertState,
    Buyer,
    Integration,
    IntegrationStatus,
    utcnow,
)
from tests import factories
from tests.support.calls import add_calls, call


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
    add_calls(
        session,
        *(
            call(ws.id, "stripe", outcome="ok" if n >= 2 else "unavailable", latency_ms=40)
            for n in range(100)
        ),
    )
    for _ in range(circuits.POLICY.consecutive_failures):
        circuits.record(
            session,
            provider="stripe",
            workspace_id=ws.id,
            ok=False,
            error="Stripe answered 500: down",
        )
    session.commit()

    [stripe] = tiles.provider_tiles(session, workspace_id=ws.id)
    assert stripe.window.calls == 100 and stripe.window.failures == 2  # the day looks fine
    assert stripe.name == "Stripe" and stripe.breaker == "open" and stripe.next_probe_at
    assert stripe.status == tiles.MAJOR_OUTAGE and stripe.troubled
    assert [w.text for w in stripe.waiting] == ["3 buyers to sync"]
    assert stripe.note.startswith("Stripe is unavailable; work is waiting (3 jobs queued)")
    assert "Stripe answered 500: down" in stripe.note

    circuits.record(session, provider="stripe", workspace_id=ws.id, ok=True)
    session.commit()
    [stripe] = tiles.provider_tiles(session, workspace_id=ws.id)
    assert stripe.breaker == "closed" and stripe.waiting == []


def test_another_workspaces_open_breaker_and_its_error_are_not_shown(session: Session) -> None:
    """Issue 13, item 2: A's outage is A's. B's Health page ("Providers now"), Jobs page and
    the show page's Stripe banner (provider_status.state) say nothing of it."""
    from console.state import jobs as jobs_page

    a, b = factories.workspace(session, slug="a"), factories.workspace(session, slug="b")
    for ws in (a, b):
        session.add(
            Integration(
                workspace_id=ws.id,
                provider="stripe",
                display_name="Stripe",
                status=IntegrationStatus.ACTIVE,
            )
        )
    secret = "Stripe answered 500: acct_A_private is down"
    for _ in range(circuits.POLICY.consecutive_failures):
        circuits.record(session, provider="stripe", workspace_id=a.id, ok=False, error=secret)
    circuits.record(session, provider="stripe", workspace_id=b.id, ok=True)
    session.commit()

    [a_now] = tiles.provider_tiles(session, workspace_id=a.id)
    assert a_now.breaker == "open" and secret in a_now.note  # A sees its own
    [b_now] = tiles.provider_tiles(session, workspace_id=b.id)
    assert b_now.breaker == "closed" and not b_now.troubled and b_now.note == ""
    assert secret not in str(b_now)
    banner = provider_status.state(session, workspace_id=b.id, provider="stripe")
    assert banner.state == provider_status.READY and banner.message == ""
    circuits_b = jobs_page.read_snapshot(session, b.id).circuits
    assert [c["state"] for c in circuits_b] == ["closed"]
    assert all(secret not in str(c) for c in circuits_b)
    assert [c["error"] for c in jobs_page.read_snapshot(session, a.id).circuits] == [secret]


def test_alerts_list_the_unresolved_first_then_the_recently_resolved(session: Session) -> None:
    ws, other = factories.workspace(session), factories.workspace(session, slug="other")
    now = utcnow()

    def alert(workspace_id: int, state: AlertState, minutes_ago: int, key: str) -> Alert:
        seen = now - dt.timedelta(minutes=minutes_ago)
        row = Alert(
            workspace_id=workspace_id,
            type="job.dead",
            message=key,
            entity_key=key,
            state=state,
            last_seen_at=seen,
            resolved_at=seen if state is AlertState.RESOLVED else None,
        )
        session.add(row)
        return row

    # The resolved one was seen last, yet comes after every unresolved one.
    alert(ws.id, AlertState.RESOLVED, 1, "resolved")
    alert(ws.id, AlertState.IGNORED, 5, "ignored")
    alert(ws.id, AlertState.OPEN, 2, "open")
    alert(ws.id, AlertState.SNOOZED, 3, "snoozed")
    alert(ws.id, AlertState.ACKNOWLEDGED, 4, "acknowledged")
    alert(ws.id, AlertState.RESOLVED, 30, "resolved long ago")
    alert(other.id, AlertState.OPEN, 0, "another workspace's")
    session.flush()

    listed = health.listed_alerts(session, workspace_id=ws.id, resolved_limit=1)
    assert [a.message for a in listed] == ["open", "snoozed", "acknowledged", "ignored", "resolved"]
