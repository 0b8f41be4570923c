"""SendGrid in the provider sandbox: the slice of the v3 API the product calls through the official
SDK (mail/send, scopes), a mailbox page where a person reads what was sent and acts as the
recipient (open, click, bounce, ...), and SendGrid's signed Event Webhook for everything that
happens to a message.

The parts: ``mailbox`` (state, sends, API keys, events and their signed delivery), ``pages``
(mailbox and message pages, the control-page table), ``routes`` (the HTTP surface) and
``schema`` (what mail/send accepts). This package is what backend/sandbox/app.py mounts.
"""

from __future__ import annotations

from backend.sandbox.sendgrid.mailbox import (
    BAD_GRANT,
    DEMO_API_KEY,
    NAME,
    PREFIX,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    render_error,
)
from backend.sandbox.sendgrid.pages import summary
from backend.sandbox.sendgrid.routes import build_router

__all__ = [
    "BAD_GRANT",
    "DEMO_API_KEY",
    "NAME",
    "PREFIX",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "build_router",
    "render_error",
    "summary",
]
