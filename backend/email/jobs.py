"""The e-mail domain's work: the ``email.send`` outbox job (backend/email/send.py) and the
handlers of SendGrid's events (backend/email/events.py).

Covered by tests/jobs/test_discovery.py (what is declared here is loaded).
"""

from __future__ import annotations

from backend.email import events, send, service
from backend.platform import inbox, outbox

# -- outbox job kinds -----------------------------------------------------------------------

outbox.declare(service.SEND_KIND, send.send, provider="sendgrid", on_dead=send.on_dead)

# -- inbox handlers ------------------------------------------------------------------------

# SendGrid's Event Webhook (the sidecar stores each event): backend/email/events.py. A
# batch's messages and recorded events are prefetched and its writes deferred; an event that
# reads what earlier ones wrote (a suppression, a lead, an alert) flushes around itself.
inbox.register(events.SOURCE, events.HANDLERS, defer_writes=True, prefetch=events.prefetch)
