"""Importing this package registers every periodic job (see registry.py)."""

from backend.jobs import heartbeat, sessions
from backend.jobs.registry import PeriodicJob, declared, periodic

__all__ = ["PeriodicJob", "declared", "heartbeat", "periodic", "sessions"]
