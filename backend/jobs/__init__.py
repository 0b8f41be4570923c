"""Importing this package registers every periodic job and every outbox job kind."""

from backend.jobs import heartbeat, maintenance, outbox, sessions
from backend.jobs.registry import PeriodicJob, declared, periodic
from backend.services import buyers, inbox, stripe_events

__all__ = [
    "PeriodicJob",
    "buyers",
    "declared",
    "heartbeat",
    "inbox",
    "maintenance",
    "outbox",
    "periodic",
    "sessions",
    "stripe_events",
]
