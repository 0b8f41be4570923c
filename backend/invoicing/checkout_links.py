"""Getting an invoice's checkout link to the buyer: by Messenger when the workspace's Page is
connected and the buyer has written to it (Messenger can only reach people who did), otherwise
shown to the operator to copy and send by hand. Every attempt is recorded; a Messenger send is
recorded before it is made, so that a rerun of its job never repeats an acknowledged one
(``send_by_messenger``; docs/security/once.md).

Tested in tests/invoicing/test_checkout_links.py and tests/invoicing/test_service.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from backend.connections import providers
from backend.integrations.errors import ProviderRateLimited, ProviderRejected
from backend.invoicing import live_priority
from backend.invoicing import panel as invoice_panel
from backend.platform import audit, outbox
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput
from models import (
    Buyer,
    CheckoutLinkSend,
    Integration,
    IntegrationStatus,
    Invoice,
    InvoiceStatus,
    Show,
    utcnow,
)

SEND_KIND = "messenger.send_checkout_link"
MESSAGE = "Hi {name}! Here's your checkout for {show}: {url}"
MANUAL = "manual"
EMAIL = "email"
NOT_SENT = "not_sent"
SENDING = "sending"
SENT = "sent"
UNHEARD = "An earlier try sent this and its answer never came: the buyer may have it."
AGAIN = "Sent again: an earlier try's answer never came, so the buyer may have the link twice."


@dataclass(frozen=True)
class LinkSend:
    """What "Send link" did: ``sent`` when a message is on its way (the console shows success);
    otherwise nothing was sent and ``message`` says why and what the operator can do."""

    sent: bool
    message: str


def message_for(name: str, show: str, url: str) -> str:
    return MESSAGE.format(name=name, show=show, url=url)


def _buyer(session: Session, invoice: Invoice) -> Buyer | None:
    return session.scalars(
        select(Buyer).where(
            Buyer.workspace_id == invoice.workspace_id,
            Buyer.platform_user_id == invoice.buyer_platform_id,
        )
    ).first()


def why_not_messenger(session: Session, invoice: Invoice) -> str | None:
    """None when Messenger can carry the link; otherwise why not, in words."""
    connected = session.scalar(
        select(Integration.status).where(
            Integration.workspace_id == invoice.workspace_id, Integration.provider == "messenger"
        )
    )
    if connected is not IntegrationStatus.ACTIVE:
        return "Messenger is not connected"
    buyer = _buyer(session, invoice)
    if buyer is None or not buyer.messenger_psid:
        return (
            f"@{invoice.buyer_handle} has not written to your Page, so Messenger cannot reach them"
        )
    return None


def _record(
    session: Session, invoice: Invoice, *, channel: str, outcome: str, detail: str, actor: str
) -> None:
    session.add(
        CheckoutLinkSend(
            workspace_id=invoice.workspace_id,
            invoice_id=invoice.id,
            channel=channel,
            outcome=outcome,
            detail=detail,
            actor=actor,
        )
    )


def _manual(session: Session, invoice: Invoice, reason: str, actor: str) -> None:
    # A link Stripe emailed stays emailed: "send manually" would tell the operator the buyer
    # has nothing, which is not true.
    if invoice.link_channel != EMAIL:
        invoice.link_channel = MANUAL
    _record(session, invoice, channel=MANUAL, outcome=MANUAL, detail=reason, actor=actor)


def _enqueue_send(session: Session, invoice: Invoice, key: str, actor: str) -> None:
    outbox.enqueue(
        session,
        kind=SEND_KIND,
        payload={"invoice_id": invoice.id, "actor": actor},
        idempotency_key=key,
        workspace_id=invoice.workspace_id,
        ahead=live_priority.goes_first(session, invoice.show_id),
    )


def after_creation(session: Session, invoice: Invoice, *, emailed: bool) -> None:
    """A new invoice's link goes out by itself when it can: Stripe emailed it, or Messenger."""
    if emailed:
        _record(session, invoice, channel=EMAIL, outcome="sent", detail="", actor="stripe")
        return
    reason = why_not_messenger(session, invoice)
    if reason is None:
        _enqueue_send(session, invoice, f"checkout-link:{invoice.id}:auto", "scheduler")
    else:
        _manual(session, invoice, reason, "scheduler")


def send_link(session: Session, *, actor: Actor, invoice_id: int) -> LinkSend:
    """The operator's "Send link": what happened, in words, for the panel to show."""
    actor.require_change("send checkout links")
    invoice = invoice_panel.invoice_for(
        session, workspace_id=actor.workspace_id, invoice_id=invoice_id
    )
    if not invoice.external_url or invoice.status not in (InvoiceStatus.SENT, InvoiceStatus.ERROR):
        raise InvalidInput("There is no open checkout link for this invoice.")
    handle = invoice.buyer_handle
    reason = why_not_messenger(session, invoice)
    if reason is not None and invoice.link_channel == EMAIL:
        # The buyer has the link already: say so, and that nothing more went out.
        _record(
            session,
            invoice,
            channel="messenger",
            outcome=NOT_SENT,
            detail=reason,
            actor=actor.label,
        )
        return LinkSend(
            False,
            f"Stripe has already emailed the link to @{handle}; nothing else was sent "
            f"({reason}). To reach them another way, copy the link and send it yourself.",
        )
    if reason is not None:
        _manual(session, invoice, reason, actor.label)
        return LinkSend(
            False, f"Not sent: {reason}. Copy the link and send it to @{handle} yourself."
        )
    sends = session.scalar(
        select(func.count())
        .select_from(CheckoutLinkSend)
        .where(CheckoutLinkSend.invoice_id == invoice.id)
    )
    _enqueue_send(
        session, invoice, f"checkout-link:{invoice.id}:{int(sends or 0) + 1}", actor.label
    )
    audit.record(session, actor=actor, action="invoice.send_link", target=f"invoice:{invoice.id}")
    return LinkSend(True, f"Sending the link to @{handle} on Messenger.")


def record_copy(session: Session, *, actor: Actor, invoice_id: int) -> None:
    """The operator copied the link to send it themselves."""
    invoice = invoice_panel.invoice_for(
        session, workspace_id=actor.workspace_id, invoice_id=invoice_id
    )
    _record(session, invoice, channel=MANUAL, outcome="copied", detail="", actor=actor.label)


def sends_of(session: Session, *, workspace_id: int, invoice_id: int) -> list[CheckoutLinkSend]:
    return list(
        session.scalars(
            select(CheckoutLinkSend)
            .where(
                CheckoutLinkSend.workspace_id == workspace_id,
                CheckoutLinkSend.invoice_id == invoice_id,
            )
            .order_by(CheckoutLinkSend.id)
        )
    )


def _intent(session: Session, key: str) -> CheckoutLinkSend | None:
    return session.scalars(
        select(CheckoutLinkSend).where(CheckoutLinkSend.intent_key == key)
    ).first()


def send_by_messenger(session: Session, job: outbox.JobContext) -> None:
    """Send the link once. Facebook's Send API takes no idempotency key, so the send is written
    down (``sending``, under the job's key) and committed before the request leaves, and its
    answer is committed as soon as it comes. A rerun of the job (a retry, a worker that died,
    an operator's replay) reads that row: an answered send is not made again; a send still
    ``sending`` had its request leave with no answer heard (a timeout, a crash) and is made
    again. That way errs towards a second message: the buyer may read the same link twice,
    which costs a glance (it is one Stripe invoice, payable once), whereas a link never sent
    costs the sale and would show as sent. The second send says so in the sends log."""
    invoice = session.get_one(Invoice, job.payload["invoice_id"])
    actor = str(job.payload.get("actor") or "scheduler")
    intent = _intent(session, job.idempotency_key)
    if intent is not None and intent.outcome != SENDING:
        return  # answered on an earlier try: sent, or fell back to a manual send
    unheard = intent is not None  # an earlier try's request left and its answer never came
    if invoice.status in (InvoiceStatus.PAID, InvoiceStatus.VOID) or not invoice.external_url:
        # Paid or voided meanwhile: a link would only confuse the buyer.
        if intent is not None:
            _settle(intent, NOT_SENT, f"{UNHEARD} The invoice is {invoice.status.value} now.")
        return
    reason = why_not_messenger(session, invoice)
    if reason is not None:
        if intent is not None:
            _settle(intent, MANUAL, f"{UNHEARD} {reason}.")
            if invoice.link_channel != EMAIL:
                invoice.link_channel = MANUAL
        else:
            _manual(session, invoice, reason, actor)
        return
    buyer = _buyer(session, invoice)
    assert buyer is not None and buyer.messenger_psid
    show = session.get(Show, invoice.show_id) if invoice.show_id else None
    psid = buyer.messenger_psid
    text = message_for(
        invoice.buyer_handle, show.title if show else "the show", invoice.external_url
    )
    page = providers.messenger_for(session, workspace_id=invoice.workspace_id)
    if intent is None:
        intent = CheckoutLinkSend(
            workspace_id=invoice.workspace_id,
            invoice_id=invoice.id,
            channel="messenger",
            outcome=SENDING,
            detail="",
            actor=actor,
            intent_key=job.idempotency_key,
        )
        session.add(intent)
        session.flush()
    intent_id = intent.id

    def deliver() -> str | None:
        try:
            page.send_text(psid, text)
        except ProviderRejected as exc:
            return str(exc)  # cannot succeed on retry: fall back to a manual send
        return None

    try:
        # Ends the job's transaction, committing the intent, before the request leaves.
        refused = job.call_provider(deliver)
    except ProviderRateLimited:
        # Refused before anything was sent: the next try is a first send, not a repeat.
        session.execute(delete(CheckoutLinkSend).where(CheckoutLinkSend.id == intent_id))
        session.commit()
        raise
    invoice = session.get_one(Invoice, job.payload["invoice_id"])
    intent = session.get_one(CheckoutLinkSend, intent_id)
    if refused is not None:
        _settle(intent, MANUAL, f"Messenger refused: {refused}"[:1000])
        if invoice.link_channel != EMAIL:
            invoice.link_channel = MANUAL
    else:
        _settle(intent, SENT, AGAIN if unheard else "")
        invoice.link_channel, invoice.link_sent_at = "messenger", utcnow()
    # Committed now, not with the job's completion: a worker that dies between the two must
    # leave the answer behind, or the rerun would send an acknowledged message again.
    session.commit()


def _settle(intent: CheckoutLinkSend, outcome: str, detail: str) -> None:
    intent.outcome, intent.detail = outcome, detail
