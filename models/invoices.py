"""One invoice per buyer and show, mirrored from the provider that holds it (Stripe)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAtMixin, IdMixin
from models.enums import InvoiceStatus, str_enum


class Invoice(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "invoices"
    __table_args__ = (
        Index("ix_invoices_show_id_status", "show_id", "status"),
        Index("ix_invoices_workspace_id_created_at", "workspace_id", "created_at"),
        Index("ix_invoices_external_id", "external_id"),
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
    status: Mapped[InvoiceStatus] = mapped_column(
        str_enum(InvoiceStatus, "invoice_status"), default=InvoiceStatus.DRAFT
    )
    amount_cents: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    line_items: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    error_message: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None]
    paid_at: Mapped[dt.datetime | None]
