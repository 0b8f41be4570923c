"""A workspace's connection to one provider; its credentials are encrypted at rest."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAtMixin, IdMixin
from models.enums import IntegrationStatus, str_enum


class Integration(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "integrations"
    __table_args__ = (
        UniqueConstraint("workspace_id", "provider"),
        # A provider account (Stripe's acct_…) belongs to one workspace: two workspaces
        # connecting it at the same instant cannot both win (backend/connections/rows.py).
        # An index, not a table constraint: SQLite adds one without rebuilding the table,
        # and a rebuild would fire the ON DELETE actions of every row that points at it.
        Index(
            "uq_integrations_provider_external_account_id",
            "provider",
            "external_account_id",
            unique=True,
        ),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(40))
    status: Mapped[IntegrationStatus] = mapped_column(
        str_enum(IntegrationStatus, "integration_status"), default=IntegrationStatus.INACTIVE
    )
    display_name: Mapped[str] = mapped_column(String(120))
    credentials_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(String(40))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The provider account the credentials reach, for providers whose accounts are one
    # workspace's each; set while connected (active or error), cleared on disconnect.
    external_account_id: Mapped[str | None] = mapped_column(String(128))
    connected_at: Mapped[dt.datetime | None]
    last_checked_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class OAuthNonce(IdMixin, CreatedAtMixin, Base):
    """One OAuth flow an owner started: used once, by the browser that started it, within ten
    minutes. Only digests are stored (the nonce travels in the signed ``state``; the browser's
    binding is a cookie on the sidecar's origin). Migration 0008."""

    __tablename__ = "oauth_nonces"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(40))
    nonce_digest: Mapped[str] = mapped_column(String(64), unique=True)
    # The console session that started the flow (its token's digest, as sessions stores it):
    # logging out ends the flows it started.
    session_digest: Mapped[str] = mapped_column(String(64))
    # The browser's binding cookie, set by the sidecar's start hop (NULL until then).
    browser_digest: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
