"""A show with items, buyers and claims, committed, for invoice panel tests and benchmarks."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.invoicing.service import CREATE_KIND
from backend.platform import outbox
from models import Buyer, Claim, Invoice, Show, ShowItem, ShowStatus


@dataclass(frozen=True)
class MadeShow:
    id: int
    workspace_id: int
    item_ids: list[int]
    buyers: list[str]  # platform user ids, in handle order


def make_show(
    engine: Engine,
    *,
    workspace_id: int,
    buyers: int,
    claims_per_buyer: int = 3,
    items: int = 10,
    unpriced: tuple[int, ...] = (),
    emails: bool | None = None,
    psids: bool = False,
    title: str = "Friday Finds",
) -> MadeShow:
    """``buyers`` buyers (handle b0000…), each claiming ``claims_per_buyer`` items in turn.

    Item n costs (n + 1) x $5 unless its number is in ``unpriced``; ``emails``: None gives
    every other buyer an email, True all, False none; ``psids`` gives each a Messenger id.
    """
    with Session(engine) as session:
        show = Show(workspace_id=workspace_id, title=title, status=ShowStatus.ENDED)
        session.add(show)
        session.flush()
        rows = [
            ShowItem(
                workspace_id=workspace_id,
                show_id=show.id,
                number=n + 1,
                title=f"Item {n + 1}",
                price_cents=None if n + 1 in unpriced else (n + 1) * 500,
            )
            for n in range(items)
        ]
        session.add_all(rows)
        session.flush()
        pids = []
        for b in range(buyers):
            pid = f"fb_{workspace_id}_{show.id}_{b}"
            pids.append(pid)
            has_email = (b % 2 == 0) if emails is None else emails
            session.add(
                Buyer(
                    workspace_id=workspace_id,
                    platform_user_id=pid,
                    handle=f"b{b:04d}",
                    email=f"b{b}@buyers.example" if has_email else None,
                    messenger_psid=str(9_000_000_000 + b) if psids else None,
                )
            )
            for c in range(claims_per_buyer):
                session.add(
                    Claim(
                        workspace_id=workspace_id,
                        show_id=show.id,
                        item_id=rows[(b + c) % items].id,
                        platform_user_id=pid,
                        buyer_handle=f"b{b:04d}",
                        quantity=1 + (c == 0 and b % 3 == 0),
                    )
                )
        session.commit()
        return MadeShow(show.id, workspace_id, [r.id for r in rows], pids)


_job_numbers = itertools.count()


def waiting_invoice_jobs(session: Session, show: Show, count: int, kind: str = CREATE_KIND) -> None:
    """``count`` draft invoices of ``show`` with a pending job of ``kind`` each (what the Health
    page's "what waits" counts), flushed."""
    for _ in range(count):
        n = next(_job_numbers)
        invoice = Invoice(
            workspace_id=show.workspace_id,
            show_id=show.id,
            provider="stripe",
            buyer_handle=f"b{n}",
            buyer_platform_id=f"fb_{n}",
        )
        session.add(invoice)
        session.flush()
        outbox.enqueue(
            session,
            kind=kind,
            payload={"invoice_id": invoice.id},
            idempotency_key=f"waiting:{n}",
            workspace_id=show.workspace_id,
        )
