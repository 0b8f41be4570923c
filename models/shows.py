"""Live-selling shows, the items offered in them, the buyers and what they claimed."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAtMixin, IdMixin, utcnow
from models.enums import ShowStatus, str_enum


class Show(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "shows"
    __table_args__ = (Index("ix_shows_workspace_id_started_at", "workspace_id", "started_at"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    platform: Mapped[str] = mapped_column(String(32), default="facebook_live")
    status: Mapped[ShowStatus] = mapped_column(str_enum(ShowStatus, "show_status"))
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None]


class ShowItem(IdMixin, Base):
    __tablename__ = "show_items"
    __table_args__ = (UniqueConstraint("show_id", "number"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id", ondelete="CASCADE"))
    number: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    # None means the operator has not priced it yet; the invoice panel flags it.
    price_cents: Mapped[int | None]


class Buyer(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "buyers"
    __table_args__ = (UniqueConstraint("workspace_id", "platform_user_id"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    platform_user_id: Mapped[str] = mapped_column(String(64))
    handle: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64))
    # The buyer's page-scoped id once they have written to the Page: Messenger can reach them.
    messenger_psid: Mapped[str | None] = mapped_column(String(64))


class Claim(IdMixin, Base):
    __tablename__ = "claims"
    __table_args__ = (Index("ix_claims_show_id_platform_user_id", "show_id", "platform_user_id"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("show_items.id", ondelete="CASCADE"))
    platform_user_id: Mapped[str] = mapped_column(String(64))
    buyer_handle: Mapped[str] = mapped_column(String(120))
    quantity: Mapped[int] = mapped_column(default=1)
    claimed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
