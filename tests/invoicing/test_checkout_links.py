"""Messages never twice: a checkout link sent by Messenger (whose Send API takes no idempotency
key) is written down before it leaves and its answer as soon as it comes, so a rerun of the
job after a crash does not send an acknowledged link again; a send whose answer never came is
sent again, on purpose, and the sends log says the buyer may have it twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.connections import credentials, provider_status
from backend.integrations.errors import ProviderRateLimited, ProviderTimeout
from backend.integrations.messenger import MessengerAdapter
from backend.invoicing import checkout_links
from backend.invoicing import service as invoicing
from backend.jobs.runner import Runner
from backend.platform import outbox_operators
from models import (
    CheckoutLinkSend,
    Integration,
    IntegrationStatus,
    Invoice,
    JobStatus,
    OutboxJob,
)
from tests.support.shop import Shop
from tests.support.shows import make_show


def _connect_messenger(shop: Shop) -> None:
    page = httpx.post(
        f"{shop.sandbox.url}/graph/_sandbox/pages", json={"name": "Lakeside"}, timeout=10
    ).json()
    with Session(shop.engine) as session:
        row = Integration(
            workspace_id=shop.workspace_id,
            provider="messenger",
            display_name="Messenger",
            status=IntegrationStatus.ACTIVE,
        )
        session.add(row)
        session.flush()
        credentials.seal(row, {"page_access_token": page["page_access_token"]})
        session.commit()


def _messages(shop: Shop) -> list[dict[str, Any]]:
    with shop.sandbox.ctx.store.section("messenger") as state:
        return list(state.get("messages", []))


def _invoice_one_messenger_buyer(shop: Shop) -> int:
    """One buyer Messenger can reach (no email: Stripe does not send it); returns the invoice.
    Its link's send job is queued, not run."""
    _connect_messenger(shop)
    show = make_show(
        shop.engine, workspace_id=shop.workspace_id, buyers=1, emails=False, psids=True
    )
    with Session(shop.engine) as session:
        invoicing.generate_all(session, actor=shop.owner, show_id=show.id)
        session.commit()
    Runner(shop.engine, "test-worker", batch=50).run_once()  # the invoice; its send is queued
    assert _send_job(shop).status is JobStatus.PENDING and _messages(shop) == []
    return shop.invoices(show.id)[0].id


def _send_job(shop: Shop) -> OutboxJob:
    with Session(shop.engine) as session:
        return session.scalars(
            select(OutboxJob).where(OutboxJob.kind == checkout_links.SEND_KIND)
        ).one()


def _retry_now(shop: Shop) -> None:
    """The operator's "Retry now" on the waiting job (rather than waiting out its backoff)."""
    with Session(shop.engine) as session:
        outbox_operators.retry_now(session, actor=shop.owner, job_id=_send_job(shop).id)
        session.commit()


def _sends(shop: Shop, invoice_id: int) -> list[CheckoutLinkSend]:
    with Session(shop.engine) as session:
        return checkout_links.sends_of(
            session, workspace_id=shop.workspace_id, invoice_id=invoice_id
        )


def _once(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str, wrap: Callable[..., Any]
) -> None:
    """Replace ``owner.name`` by ``wrap(real, *args)`` for one call, then put it back."""
    real = getattr(owner, name)

    def patched(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(owner, name, real)
        return wrap(real, *args, **kwargs)

    monkeypatch.setattr(owner, name, patched)


def test_a_link_messenger_acknowledged_is_not_sent_again_when_the_worker_dies_after(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice_id = _invoice_one_messenger_buyer(shop)

    real_succeeded = provider_status.succeeded

    def die_before_marking_done(session: Session, *, workspace_id: int, provider: str) -> None:
        # Called in the transaction that marks the job done, after the handler returned.
        if provider == "messenger":
            monkeypatch.setattr(provider_status, "succeeded", real_succeeded)
            raise RuntimeError("the worker died before marking the job done")
        real_succeeded(session, workspace_id=workspace_id, provider=provider)

    monkeypatch.setattr(provider_status, "succeeded", die_before_marking_done)
    shop.drain()
    assert len(_messages(shop)) == 1
    assert _send_job(shop).status is JobStatus.PENDING  # to be run again

    _retry_now(shop)
    shop.drain()

    assert len(_messages(shop)) == 1
    assert _send_job(shop).status is JobStatus.DONE
    assert [(s.channel, s.outcome, s.detail) for s in _sends(shop, invoice_id)] == [
        ("messenger", "sent", "")
    ]
    with Session(shop.engine) as session:
        assert session.get_one(Invoice, invoice_id).link_channel == "messenger"


def test_a_link_whose_answer_never_came_is_sent_again_and_the_log_says_so(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice_id = _invoice_one_messenger_buyer(shop)

    def sent_but_unheard(real: Any, *args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise ProviderTimeout("Facebook did not answer within 10 s", seconds=10)

    _once(monkeypatch, MessengerAdapter, "send_text", sent_but_unheard)
    shop.drain()
    assert len(_messages(shop)) == 1
    (sending,) = _sends(shop, invoice_id)
    assert sending.outcome == checkout_links.SENDING  # written before the request left

    _retry_now(shop)
    shop.drain()

    # Errs towards a second message: the same link twice beats a link never sent.
    assert len(_messages(shop)) == 2
    (sent,) = _sends(shop, invoice_id)
    assert sent.outcome == "sent" and "may have the link twice" in (sent.detail or "")


def test_a_send_refused_before_it_left_is_a_first_send_on_the_retry(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice_id = _invoice_one_messenger_buyer(shop)

    def throttled(real: Any, *args: Any, **kwargs: Any) -> Any:
        # Long enough that the drain cannot come round to it again, however slow the machine.
        raise ProviderRateLimited("Facebook says: too many calls", retry_after=3600)

    _once(monkeypatch, MessengerAdapter, "send_text", throttled)
    shop.drain()
    assert _messages(shop) == [] and _sends(shop, invoice_id) == []

    _retry_now(shop)
    shop.drain()

    assert len(_messages(shop)) == 1
    (sent,) = _sends(shop, invoice_id)
    assert (sent.outcome, sent.detail, sent.intent_key) == (
        "sent",
        "",
        _send_job(shop).idempotency_key,
    )
