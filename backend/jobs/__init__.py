"""Importing this package registers every periodic job and every outbox job kind."""

from backend.jobs import heartbeat, maintenance, oauth, outbox, sessions
from backend.jobs.registry import PeriodicJob, declared, periodic
from backend.services import job_kinds

__all__ = [
    "PeriodicJob",
    "declared",
    "heartbeat",
    "job_kinds",
    "maintenance",
    "oauth",
    "outbox",
    "periodic",
    "sessions",
]
