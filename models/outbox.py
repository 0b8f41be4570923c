"""The transactional outbox: every side effect on a provider, written with the change that asks."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAtMixin, IdMixin, utcnow
from models.enums import JobStatus, str_enum


class OutboxJob(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "outbox_jobs"
    __table_args__ = (
        # The claim query: pending jobs whose time has come, oldest first.
        Index("ix_outbox_jobs_status_run_after", "status", "run_after"),
        Index("ix_outbox_jobs_kind_status", "kind", "status"),
        Index("ix_outbox_jobs_provider_status", "provider", "status"),
    )

    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(60))
    # The provider the job calls (from the kind's registration): its breaker can hold the job.
    provider: Mapped[str | None] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[JobStatus] = mapped_column(
        str_enum(JobStatus, "job_status"), default=JobStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=6)
    run_after: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[dt.datetime | None]


class JobKindPause(Base):
    """An operator paused a kind of job (e.g. during a provider incident); workers skip it."""

    __tablename__ = "job_kind_pauses"

    kind: Mapped[str] = mapped_column(String(60), primary_key=True)
    paused_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    paused_by: Mapped[str] = mapped_column(String(80))


class ProviderCircuit(Base):
    """A provider's circuit breaker and rate-limit bucket, shared by every worker process."""

    __tablename__ = "provider_circuits"

    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    # closed: calls flow; open: jobs wait until opened_until; half_open: one probe at a time.
    state: Mapped[str] = mapped_column(String(16), default="closed")
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    window_started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    window_calls: Mapped[int] = mapped_column(default=0)
    window_failures: Mapped[int] = mapped_column(default=0)
    opened_until: Mapped[dt.datetime | None]
    open_count: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Token bucket for the provider's rate limit (tokens refill at the configured rate).
    tokens: Mapped[float] = mapped_column(default=0.0)
    tokens_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
