"""Importing this package registers every periodic job and every outbox job kind."""

from backend.jobs import drainer as outbox
from backend.jobs import heartbeat, job_kinds, maintenance, oauth, sessions
from backend.platform.periodic import PeriodicJob, declared, periodic

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
