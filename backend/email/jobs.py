"""The e-mail domain's work: the ``email.send`` outbox job (backend/email/send.py) and the
handlers of SendGrid's events (backend/email/events.py).

Covered by tests/jobs/test_discovery.py (what is declared here is loaded).
"""

from __future__ import annotations

from backend.email import events, inbound, send, service
from backend.platform import inbox, outbox

# -- outbox job kinds -----------------------------------------------------------------------

outbox.declare(service.SEND_KIND, send.send, provider="sendgrid", on_dead=send.on_dead)

# -- inbox handlers ------------------------------------------------------------------------

# SendGrid's Event Webhook (the sidecar stores each event): backend/email/events.py. Not
# defer_writes: an event's handler queries what earlier events of its batch wrote (its
# dedupe row, a suppression).
inbox.register(events.SOURCE, events.HANDLERS)

# SendGrid Inbound Parse (replies; the sidecar stores each post): backend/email/inbound.py.
inbox.register(inbound.PROVIDER, inbound.HANDLERS)
