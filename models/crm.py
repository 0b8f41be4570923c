"""Event services: leads, clients, proposals, contracts, their payments and resulting events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAtMixin, IdMixin, utcnow
from models.enums import ContractStatus, PaymentKind, PaymentStatus, str_enum


class Lead(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "leads"
    # A repeat inquiry from the same address updates the lead instead of creating another.
    __table_args__ = (UniqueConstraint("workspace_id", "email"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(40), default="website")
    status: Mapped[str] = mapped_column(String(24), default="new")
    message: Mapped[str | None] = mapped_column(Text)
    inquiries: Mapped[int] = mapped_column(default=1)
    marketing_consent: Mapped[bool] = mapped_column(default=False)
    company: Mapped[str | None] = mapped_column(String(120))
    service_type: Mapped[str | None] = mapped_column(String(60))
    event_date: Mapped[dt.date | None] = mapped_column(Date)
    last_inquiry_at: Mapped[dt.datetime | None]
    # An IANA zone ("Europe/Berlin") for sequence send windows; the workspace's when unknown.
    time_zone: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Client(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "clients"
    __table_args__ = (UniqueConstraint("workspace_id", "email"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(254))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64))


class Proposal(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "proposals"

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(200))
    config_items: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    total_cents: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    status: Mapped[str] = mapped_column(String(24), default="draft")
    sent_at: Mapped[dt.datetime | None]


class Contract(IdMixin, CreatedAtMixin, Base):
    """A signed agreement. Which event it became is on the event (events.contract_id, UNIQUE),
    so that "at most one event per contract" is a constraint, not a convention."""

    __tablename__ = "contracts"

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[ContractStatus] = mapped_column(
        str_enum(ContractStatus, "contract_status"), default=ContractStatus.DRAFT
    )
    total_cents: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    service_type: Mapped[str] = mapped_column(String(60))
    event_date: Mapped[dt.date | None] = mapped_column(Date)
    venue: Mapped[str | None] = mapped_column(String(200))
    signed_at: Mapped[dt.datetime | None]


class Payment(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "payments"

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    kind: Mapped[PaymentKind] = mapped_column(str_enum(PaymentKind, "payment_kind"))
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[PaymentStatus] = mapped_column(
        str_enum(PaymentStatus, "payment_status"), default=PaymentStatus.PENDING
    )
    paid_at: Mapped[dt.datetime | None]


class Event(IdMixin, CreatedAtMixin, Base):
    """The logistics side of a booked job (a recital, a wedding shoot)."""

    __tablename__ = "events"

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"))
    # The contract this event was created from; UNIQUE makes the handoff happen at most once.
    contract_id: Mapped[int | None] = mapped_column(
        ForeignKey("contracts.id", ondelete="SET NULL"), unique=True
    )
    title: Mapped[str] = mapped_column(String(200))
    service_type: Mapped[str] = mapped_column(String(60))
    event_date: Mapped[dt.date | None] = mapped_column(Date)
    venue: Mapped[str | None] = mapped_column(String(200))
    drive_folder_id: Mapped[str | None] = mapped_column(String(128))
    drive_folder_url: Mapped[str | None] = mapped_column(String(500))
