"""Workspaces (the customer businesses), operators, their memberships and login sessions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAtMixin, IdMixin
from models.enums import Plan, Role, str_enum


class Workspace(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    plan: Mapped[Plan] = mapped_column(str_enum(Plan, "plan"), default=Plan.FREE)
    # The workspace as a customer of the platform's own Stripe account (plans and upgrades).
    platform_customer_id: Mapped[str | None] = mapped_column(String(64))
    platform_subscription_id: Mapped[str | None] = mapped_column(String(64))
    plan_changed_at: Mapped[dt.datetime | None]
    # How prices are typed and shown (a Babel locale: en_US writes 1,234.56, de_DE 1.234,56)
    # and the currency of new shows (ISO code, lower-case as Stripe spells it). Migration 0005.
    locale: Mapped[str] = mapped_column(String(16), default="en_US", server_default="en_US")
    currency: Mapped[str] = mapped_column(String(3), default="usd", server_default="usd")
    # Origins whose pages may post the lead form from the browser (CORS), e.g.
    # "https://studio.example". Migration 0012.
    lead_form_origins: Mapped[list[str]] = mapped_column(default=list, server_default="[]")
    # The secret in SendGrid Inbound Parse's URL for this workspace (replies to leads).
    inbound_parse_token: Mapped[str | None] = mapped_column(String(64))


class Operator(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "operators"

    # Stored lower-cased so that the UNIQUE constraint means what a person means.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    failed_logins: Mapped[int] = mapped_column(default=0)
    last_failed_login_at: Mapped[dt.datetime | None]
    last_login_at: Mapped[dt.datetime | None]


class Membership(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("operator_id", "workspace_id"),)

    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"))
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[Role] = mapped_column(str_enum(Role, "role"))


class OperatorSession(IdMixin, CreatedAtMixin, Base):
    """A logged-in browser. Only a hash of the token is stored: a database leak logs nobody in."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_operator_id", "operator_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"))
    # The workspace this browser is working in; switching changes it.
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    expires_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class LoginThrottle(IdMixin, Base):
    """A run of failed logins from one client, or from one client on one email address (known
    or not: unknown addresses are counted the same way, so the answers do not tell them apart).
    Only digests are stored: the table names neither addresses nor IPs. Migration 0008."""

    __tablename__ = "login_throttles"

    # sha256 of "client:<ip>" or "pair:<email>|<ip>".
    key_digest: Mapped[str] = mapped_column(String(64), unique=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failed_at: Mapped[dt.datetime]
