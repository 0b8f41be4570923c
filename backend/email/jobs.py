"""The e-mail domain's work: the ``email.send`` outbox job (backend/email/send.py), the
handlers of SendGrid's events (backend/email/events.py) and the 15-minute job that queues the
sequence steps that are due (backend/email/sequences/service.py).

Covered by tests/jobs/test_discovery.py (what is declared here is loaded).
"""

from __future__ import annotations

from backend.db import get_engine
from backend.email import events, inbound, send, service
from backend.email.sequences import service as sequences
from backend.platform import inbox, outbox
from backend.platform.periodic import periodic

# -- outbox job kinds -----------------------------------------------------------------------

outbox.declare(service.SEND_KIND, send.send, provider="sendgrid", on_dead=send.on_dead)

# -- inbox handlers ------------------------------------------------------------------------

# SendGrid's Event Webhook (the sidecar stores each event): backend/email/events.py. A
# batch's common events (processed, deferred, delivered, open, click about our messages) are
# applied set-based (``apply_batch``); for the rest, the batch's messages and recorded events
# are prefetched and its writes deferred; an event that reads what earlier ones wrote (a
# suppression, a lead, an alert) flushes around itself.
inbox.register(
    events.SOURCE,
    events.HANDLERS,
    defer_writes=True,
    prefetch=events.prefetch,
    apply_batch=events.apply_batch,
)

# SendGrid Inbound Parse (replies; the sidecar stores each post): backend/email/inbound.py.
inbox.register(inbound.PROVIDER, inbound.HANDLERS)

# -- periodic jobs --------------------------------------------------------------------------


@periodic(
    id="email-sequences",
    seconds=900,
    description="Queue the follow-up sequence steps that are due.",
    # Every scheduler may run it at once: each takes its own enrolments (FOR UPDATE SKIP
    # LOCKED), and a step's dedupe key sends it once whatever happens.
    exclusive=False,
)
def send_due_sequence_steps() -> None:
    sequences.run_due(get_engine())
