"""Scheduler wiring: the runner and the drainer threads. Importing this package loads every
domain's ``jobs.py`` (see ``discovery``), registering every outbox job kind, inbox handler and
periodic job."""

from backend.jobs import discovery
from backend.platform.periodic import PeriodicJob, declared, periodic

LOADED = discovery.load()

__all__ = ["LOADED", "PeriodicJob", "declared", "discovery", "periodic"]
