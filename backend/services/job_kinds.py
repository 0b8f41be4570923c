"""Importing this registers every outbox job kind and inbox handler: the scheduler needs them to
run jobs, the console to list them. Add a module here when it declares a @job_kind."""

from backend.services import buyers, inbox, plans, stripe_events

__all__ = ["buyers", "inbox", "plans", "stripe_events"]
