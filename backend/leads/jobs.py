"""The leads domain's work: the lead form's stored inquiries, made leads by the inbox's job, and
the ``lead.announce`` outbox job, which tells people about a new lead (its alert, the owners'
notification, the proposal, the sequence enrolments) once it is captured
(backend/leads/capture.py).

Covered by tests/jobs/test_discovery.py (what is declared here is loaded).
"""

from __future__ import annotations

from backend.leads import capture
from backend.platform import inbox, outbox

# -- inbox event handlers --------------------------------------------------------------------

inbox.register(capture.INBOX_PROVIDER, {capture.INQUIRY_EVENT: capture.capture_stored})

# -- outbox job kinds -----------------------------------------------------------------------

# Local: it raises the alert and queues e-mails, whose own job (email.send) calls SendGrid.
# A failure here is the database's or a bug, not an outage to wait out for hours: retried
# within the hour, then dead (the dead-job alert says so).
outbox.declare(
    capture.ANNOUNCE_KIND,
    capture.announce,
    backoff=(5, 30, 120, 600, 1800),
)
