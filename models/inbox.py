"""The webhook inbox: every verified provider event, stored before the sidecar answers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, utcnow
from models.enums import InboundStatus, str_enum


class InboundEvent(IdMixin, Base):
    __tablename__ = "inbound_events"
    __table_args__ = (
        # A provider's retry of the same event is recognised here and changes nothing. Scoped
        # by the receiving integration: one Stripe account connected to two workspaces sends
        # each event to both, with one id, and each workspace must get its copy.
        UniqueConstraint("integration_id", "external_id"),
        # Events no integration receives (the platform's own Stripe account): NULLs are
        # distinct in the constraint above, so these are kept unique by provider here.
        Index(
            "uq_inbound_events_platform_external_id",
            "provider",
            "external_id",
            unique=True,
            sqlite_where=text("integration_id IS NULL"),
            postgresql_where=text("integration_id IS NULL"),
        ),
        Index("ix_inbound_events_status_received_at", "status", "received_at"),
        # The Health page's webhook intake: a workspace's events of a window, as one range.
        Index("ix_inbound_events_workspace_id_received_at", "workspace_id", "received_at"),
    )

    provider: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(80))
    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    # The integration that received it; None for the platform's own account. No foreign key:
    # its check on the sidecar's hottest insert locks the integration's row for every event
    # (~10% of the Stripe lane's throughput, bench/bench_ingest.py), and it would guard
    # nothing: an integration is only ever deleted with its workspace, whose cascade removes
    # its events.
    integration_id: Mapped[int | None]
    payload: Mapped[dict[str, Any]]
    status: Mapped[InboundStatus] = mapped_column(
        str_enum(InboundStatus, "inbound_status"), default=InboundStatus.PENDING
    )
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    handled_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
