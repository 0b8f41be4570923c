"""Providers send events twice, out of order, concurrently. 1,000 signed Stripe events, 30% of
them sent 2-6 times, shuffled, 8 at a time, over real HTTP: exactly 1,000 are stored, each
effect is applied once, and the final state equals sending each once, in order."""

from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.api.app import create_app
from backend.db import get_engine
from backend.jobs.runner import Runner
from models import (
    Buyer,
    EngagementEvent,
    InboundEvent,
    InboundStatus,
    Invoice,
    InvoiceStatus,
    OutboxJob,
)
from tests.api.webhook_support import STRIPE_SECRET, seed, settings, stripe_v1
from tests.support.servers import serve

INVOICES = 250
STEPS = ("invoice.created", "invoice.finalized", "invoice.sent", "invoice.paid")


def _invoices(session: Session, workspace_id: int) -> None:
    for n in range(INVOICES):
        session.add(Buyer(workspace_id=workspace_id, platform_user_id=f"fb_{n}", handle=f"b{n}"))
        session.add(
            Invoice(
                workspace_id=workspace_id,
                provider="stripe",
                external_id=f"in_{n}",
                buyer_handle=f"b{n}",
                buyer_platform_id=f"fb_{n}",
                status=InvoiceStatus.DRAFT,
                amount_cents=1000 + n,
            )
        )
    session.commit()


BASE = int(time.time()) - 3600


def _events(prefix: str, base: int = BASE) -> list[dict[str, Any]]:
    """Each invoice's life, in the order Stripe would produce it."""
    events = []
    for n in range(INVOICES):
        for step, event_type in enumerate(STEPS):
            created = base + n * 10 + step
            status = {"invoice.created": "draft", "invoice.paid": "paid"}.get(event_type, "open")
            events.append(
                {
                    "id": f"evt_{prefix}_{n}_{step}",
                    "object": "event",
                    "type": event_type,
                    "created": created,
                    "api_version": "2025-09-30.clover",
                    "livemode": False,
                    "data": {
                        "object": {
                            "id": f"in_{n}",
                            "object": "invoice",
                            "status": status,
                            "amount_paid": 1000 + n if status == "paid" else 0,
                            "currency": "usd",
                            "hosted_invoice_url": f"https://invoice.example/in_{n}",
                            "status_transitions": {
                                "paid_at": created if status == "paid" else None
                            },
                        }
                    },
                }
            )
    return events


def _send(url: str, event: dict[str, Any]) -> int:
    body = json.dumps(event).encode()
    stamp = int(time.time())
    header = f"t={stamp},v1={stripe_v1(body, STRIPE_SECRET, stamp)}"
    return httpx.post(
        url, content=body, headers={"Stripe-Signature": header}, timeout=30
    ).status_code


def _drain(engine: Engine) -> None:
    runner = Runner(engine, "replay-worker", batch=500)
    while runner.run_once().claimed:
        pass


def _snapshot(engine: Engine, workspace_id: int) -> dict[str, Any]:
    with Session(engine) as session:
        invoices = {
            i.external_id: (i.status, i.paid_at, i.sent_at, i.external_url, i.error_message)
            for i in session.scalars(select(Invoice).where(Invoice.workspace_id == workspace_id))
        }
        engagement = sorted(
            (e.name, e.source_event_id.split("_", 2)[2], e.occurred_at)
            for e in session.scalars(
                select(EngagementEvent).where(EngagementEvent.workspace_id == workspace_id)
            )
        )
    return {"invoices": invoices, "engagement": engagement}


def test_duplicated_shuffled_concurrent_events_apply_once(engine: Engine) -> None:
    with Session(engine) as session:
        shuffled_ws = seed(session, slug="shuffled").workspace_id
        in_order_ws = seed(session, slug="inorder").workspace_id
        _invoices(session, shuffled_ws)
        _invoices(session, in_order_ws)

    app = create_app(settings())
    app.dependency_overrides[get_engine] = lambda: engine
    rng = random.Random(1000)
    events = _events("s")
    deliveries = [e for e in events for _ in range(rng.randint(2, 6) if rng.random() < 0.3 else 1)]
    rng.shuffle(deliveries)
    assert len(deliveries) > 1500

    with serve(app) as base:
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(
                pool.map(lambda e: _send(f"{base}/webhooks/stripe/shuffled", e), deliveries)
            )
        assert set(statuses) == {200}
        _drain(engine)
        # The reference: the same life, each event once, in order (jobs run in id order).
        for event in _events("o"):
            assert _send(f"{base}/webhooks/stripe/inorder", event) == 200
        _drain(engine)

    with Session(engine) as session:

        def count(model: Any, *where: Any) -> int:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

        assert count(InboundEvent, InboundEvent.workspace_id == shuffled_ws) == 1000
        assert count(OutboxJob, OutboxJob.workspace_id == shuffled_ws) == 1000
        # invoice.created has no handler: stored, marked ignored, no effect.
        handled = InboundEvent.status == InboundStatus.HANDLED
        assert count(InboundEvent, InboundEvent.workspace_id == shuffled_ws, handled) == 750
        statuses = dict(
            session.execute(
                select(InboundEvent.status, func.count())
                .where(InboundEvent.workspace_id == shuffled_ws)
                .group_by(InboundEvent.status)
            ).all()
        )
        assert statuses == {InboundStatus.HANDLED: 750, InboundStatus.IGNORED: 250}
        assert count(EngagementEvent, EngagementEvent.workspace_id == shuffled_ws) == INVOICES

    shuffled, in_order = _snapshot(engine, shuffled_ws), _snapshot(engine, in_order_ws)
    assert {v[0] for v in shuffled["invoices"].values()} == {InvoiceStatus.PAID}
    assert shuffled == in_order
