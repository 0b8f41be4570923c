"""Importing this package registers every periodic job and every outbox job kind."""

from backend.jobs import heartbeat, maintenance, outbox, sessions
from backend.jobs.registry import PeriodicJob, declared, periodic
from backend.services import job_kinds

__all__ = [
    "PeriodicJob",
    "declared",
    "heartbeat",
    "job_kinds",
    "maintenance",
    "outbox",
    "periodic",
    "sessions",
]
