"""Importing this registers every outbox job kind and inbox handler: the scheduler needs them to
run jobs, the console to list them. Add a module here when it declares a @job_kind."""

from backend.accounts import plans
from backend.connections import stripe_webhook_setup
from backend.invoicing import buyers, checkout_links
from backend.invoicing import events as stripe_events
from backend.invoicing import service as invoicing
from backend.platform import inbox

__all__ = [
    "buyers",
    "checkout_links",
    "inbox",
    "invoicing",
    "plans",
    "stripe_events",
    "stripe_webhook_setup",
]
