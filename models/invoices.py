"""One invoice per buyer and show (per attempt: a voided invoice can be regenerated), mirrored
from the provider that holds it (Stripe); the checkout links sent for it; and the differences
reconciliation found between our copy and the provider's."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAtMixin, IdMixin, utcnow
from models.enums import InvoiceStatus, str_enum


class Invoice(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "invoices"
    __table_args__ = (
        Index("ix_invoices_show_id_status", "show_id", "status"),
        Index("ix_invoices_workspace_id_created_at", "workspace_id", "created_at"),
        Index("ix_invoices_external_id", "external_id"),
        # The guard against duplicates: two clicks, two operators or two workers that try to
        # invoice the same buyer for the same show meet here, whatever the timing.
        UniqueConstraint("show_id", "buyer_platform_id", "attempt"),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    show_id: Mapped[int | None] = mapped_column(ForeignKey("shows.id", ondelete="SET NULL"))
    integration_id: Mapped[int | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL")
    )
    provider: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str | None] = mapped_column(String(64))
    external_url: Mapped[str | None] = mapped_column(String(500))
    buyer_handle: Mapped[str] = mapped_column(String(120))
    buyer_platform_id: Mapped[str] = mapped_column(String(64))
    # 1 for the first invoice of a buyer in a show; a regenerate after a void adds the next.
    attempt: Mapped[int] = mapped_column(default=1, server_default="1")
    status: Mapped[InvoiceStatus] = mapped_column(
        str_enum(InvoiceStatus, "invoice_status"), default=InvoiceStatus.DRAFT
    )
    amount_cents: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    line_items: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    error_message: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None]
    paid_at: Mapped[dt.datetime | None]
    # How the buyer got the checkout link: "messenger", "email" (Stripe sent it), "manual".
    link_channel: Mapped[str | None] = mapped_column(String(16))
    link_sent_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CheckoutLinkSend(IdMixin, CreatedAtMixin, Base):
    """Every attempt to get a checkout link to a buyer, whatever came of it.

    A Messenger send is recorded before the call, as ``sending`` under its job's key, and
    committed; the answer then makes it ``sent`` (or ``manual``). A rerun of the job finds the
    row: ``sent`` is not sent again; ``sending`` means an earlier try's outcome is unknown
    (backend/invoicing/checkout_links.py says which way that errs)."""

    __tablename__ = "checkout_link_sends"
    __table_args__ = (
        Index("ix_checkout_link_sends_invoice_id", "invoice_id"),
        Index("ix_checkout_link_sends_intent_key", "intent_key", unique=True),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))  # messenger | email | manual
    # sending | sent | manual | copied | not_sent
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    # The outbox job's key for a send made by a job (one row per job); None for the rest.
    intent_key: Mapped[str | None] = mapped_column(String(200))


class InvoiceDiscrepancy(IdMixin, Base):
    """A difference between our invoice and the provider's, found by reconciliation and open
    until fixed (or found to be gone on the next run)."""

    __tablename__ = "invoice_discrepancies"
    __table_args__ = (
        Index("ix_invoice_discrepancies_show_id_resolved_at", "show_id", "resolved_at"),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id", ondelete="CASCADE"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    # status | amount | missing | unlinked | duplicate (backend/services/reconciliation.py)
    field: Mapped[str] = mapped_column(String(32))
    ours: Mapped[str] = mapped_column(String(200))
    theirs: Mapped[str] = mapped_column(String(200))
    found_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
