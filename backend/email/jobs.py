"""The e-mail domain's work: the ``email.send`` outbox job (backend/email/send.py).

Covered by tests/jobs/test_discovery.py (what is declared here is loaded).
"""

from __future__ import annotations

from backend.email import send, service
from backend.platform import outbox

# -- outbox job kinds -----------------------------------------------------------------------

outbox.declare(service.SEND_KIND, send.send, provider="sendgrid", on_dead=send.on_dead)
