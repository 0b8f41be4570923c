"""The transactional outbox: every side effect on a provider, written with the change that asks."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAtMixin, IdMixin, utcnow
from models.enums import JobStatus, str_enum


class OutboxJob(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "outbox_jobs"
    __table_args__ = (
        Index("ix_outbox_jobs_status_run_after", "status", "run_after"),
        # The claim query: pending jobs whose time has come, in their fair turn.
        Index("ix_outbox_jobs_status_fair_at", "status", "fair_at", "id"),
        Index("ix_outbox_jobs_kind_status", "kind", "status"),
        Index("ix_outbox_jobs_provider_status", "provider", "status"),
        # A breaker's jobs (wake_waiting, a probe) and the last turn in a lane (enqueue).
        Index("ix_outbox_jobs_circuit_key_status_fair_at", "circuit_key", "status", "fair_at"),
    )

    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(60))
    # The provider the job calls (from the kind's registration): its breaker can hold the job.
    provider: Mapped[str | None] = mapped_column(String(40))
    # The connected account the job calls as (backend/platform/circuits.py ``key_for``): the
    # breaker that can hold it and the rate-limit bucket it paces on. None for local jobs.
    circuit_key: Mapped[str | None] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[JobStatus] = mapped_column(
        str_enum(JobStatus, "job_status"), default=JobStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=6)
    run_after: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The job's turn among every workspace's jobs: claims go in this order, not in the order
    # jobs were queued (a workspace's thousand jobs do not hold another's one back). Set by
    # outbox.enqueue; only an order, never a wait (run_after is that).
    fair_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[dt.datetime | None]


class JobKindPause(IdMixin, Base):
    """A kind of job held (e.g. during a provider incident): workers skip its jobs.

    A workspace's owners and admins pause a kind for their own workspace only (the Jobs page);
    a pause without a workspace holds the kind for every workspace and is the platform's, made
    and lifted only with ``python -m backend.cli outbox pause|resume KIND``.
    """

    __tablename__ = "job_kind_pauses"
    __table_args__ = (
        # One pause per (kind, workspace); kind first: the claim looks pauses up by a job's kind.
        UniqueConstraint("kind", "workspace_id"),
        # NULLs are distinct in a UNIQUE constraint: one platform pause per kind needs its own.
        Index(
            "uq_job_kind_pauses_platform_kind",
            "kind",
            unique=True,
            sqlite_where=text("workspace_id IS NULL"),
            postgresql_where=text("workspace_id IS NULL"),
        ),
    )

    # None: the platform's pause, for every workspace.
    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(60))
    paused_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    paused_by: Mapped[str] = mapped_column(String(80))


class ProviderCircuit(Base):
    """One connected account's circuit breaker and rate-limit bucket at a provider (a
    workspace's Stripe account, SendGrid key, Slack token, Facebook Page; or the platform's own
    account), shared by every worker process."""

    __tablename__ = "provider_circuits"

    # circuits.key_for(provider, workspace_id): "stripe:ws42", or "stripe:platform".
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    provider: Mapped[str] = mapped_column(String(40))
    # Whose account it is (None: the platform's): a workspace sees only its own circuits.
    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
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
