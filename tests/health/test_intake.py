"""Webhook intake per provider over time: events received per bucket and the lag from
received to handled, of the workspace only."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy.orm import Session

from backend.health import intake
from models import InboundEvent, InboundStatus
from tests import factories

T0 = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)
_n = itertools.count()


def _event(
    session: Session, workspace_id: int, provider: str, at: dt.datetime, lag_s: float | None
) -> None:
    session.add(
        InboundEvent(
            provider=provider,
            external_id=f"evt_{next(_n)}",
            event_type="invoice.paid",
            workspace_id=workspace_id,
            payload={},
            status=InboundStatus.PENDING if lag_s is None else InboundStatus.HANDLED,
            received_at=at,
            handled_at=None if lag_s is None else at + dt.timedelta(seconds=lag_s),
        )
    )


def test_events_and_their_lag_per_bucket(session: Session) -> None:
    ws, other = factories.workspace(session), factories.workspace(session, slug="other")
    step = dt.timedelta(minutes=15)
    _event(session, ws.id, "stripe", T0 + dt.timedelta(minutes=1), 2)
    _event(session, ws.id, "stripe", T0 + dt.timedelta(minutes=2), 6)
    _event(session, ws.id, "stripe", T0 + dt.timedelta(minutes=3), None)  # not handled yet
    _event(session, ws.id, "stripe", T0 + dt.timedelta(minutes=40), 1)
    _event(session, ws.id, "sendgrid", T0 + dt.timedelta(minutes=20), 30)
    _event(session, ws.id, "stripe", T0 - dt.timedelta(minutes=1), 1)  # before the window
    _event(session, other.id, "stripe", T0 + dt.timedelta(minutes=1), 500)
    session.flush()

    found = intake.webhook_intake(session, workspace_id=ws.id, start=T0, step=step, count=4)
    assert set(found) == {"sendgrid", "stripe"}
    stripe = found["stripe"]
    assert [p.at for p in stripe] == [T0 + step * i for i in range(4)]
    assert [(p.received, p.handled) for p in stripe] == [(3, 2), (0, 0), (1, 1), (0, 0)]
    assert stripe[0].lag_mean_s == pytest.approx(4.0)
    assert stripe[0].lag_max_s == pytest.approx(6.0)
    assert stripe[1].lag_mean_s is None
    assert found["sendgrid"][1].lag_max_s == pytest.approx(30.0)
