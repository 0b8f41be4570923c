"""Importing this registers every outbox job kind and inbox handler: the scheduler needs them to
run jobs, the console to list them. Add a module here when it declares a @job_kind."""

from backend.services import (
    buyers,
    checkout_links,
    inbox,
    invoicing,
    plans,
    stripe_events,
    stripe_webhook_setup,
)

__all__ = [
    "buyers",
    "checkout_links",
    "inbox",
    "invoicing",
    "plans",
    "stripe_events",
    "stripe_webhook_setup",
]
