"""The closed vocabularies of the domain, stored as strings with CHECK constraints."""

from __future__ import annotations

import enum

from sqlalchemy import Enum


class Plan(enum.StrEnum):
    FREE = "free"
    PRO = "pro"
    BUSINESS = "business"


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    VIEWER = "viewer"


class IntegrationStatus(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    ERROR = "error"


class ShowStatus(enum.StrEnum):
    LIVE = "live"
    ENDED = "ended"


class InvoiceStatus(enum.StrEnum):
    DRAFT = "draft"
    SENT = "sent"
    PAID = "paid"
    VOID = "void"
    ERROR = "error"


class ContractStatus(enum.StrEnum):
    DRAFT = "draft"
    SENT = "sent"
    SIGNED = "signed"
    CANCELLED = "cancelled"


class PaymentKind(enum.StrEnum):
    DEPOSIT = "deposit"
    MILESTONE = "milestone"
    FINAL = "final"


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    REFUNDED = "refunded"


class AlertState(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    # Quiet until ``snoozed_until``; back to open if it is still happening then.
    SNOOZED = "snoozed"
    # Quiet until it escalates (or for ever, ``ignored_for_ever``).
    IGNORED = "ignored"
    RESOLVED = "resolved"


class AlertPriority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


class InboundStatus(enum.StrEnum):
    PENDING = "pending"
    HANDLED = "handled"
    IGNORED = "ignored"
    FAILED = "failed"


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


def str_enum(enum_cls: type[enum.StrEnum], name: str) -> Enum:
    """A portable enum column: VARCHAR plus a named CHECK constraint, values not member names."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda cls: [member.value for member in cls],
        validate_strings=True,
    )
