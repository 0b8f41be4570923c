"""Structured logging for every process. Never pass secrets or webhook bodies as fields.

Tested in tests/api/webhooks/test_intake.py and tests/api/test_oauth.py (what is logged, and
that no secret is), and tests/security/test_secrets_canary.py (no secret in any log record, at
DEBUG, with these floors applied)."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "INFO", *, json: bool = False) -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    quiet_libraries(level)


# APScheduler logs every run of every job at INFO: a heartbeat every few seconds drowns the
# rest; alembic logs two lines at INFO each time readiness reads the database's revision
# (every /readyz probe). Their warnings still come through.
NOISY = ("apscheduler", "alembic")
# SDKs that log credentials at DEBUG (found by tests/security/test_secrets_canary.py):
# SendGrid's HTTP client logs every request's headers, the API key in Authorization among
# them; Stripe's logs every response body, Connect OAuth's access and refresh tokens and new
# webhook endpoints' signing secrets among them. Never below INFO, whatever HUB_LOG_LEVEL says.
SECRETS_AT_DEBUG = ("python_http_client", "stripe")


def quiet_libraries(level: str) -> None:
    """The floors of the libraries' loggers under ``level`` (the stdlib half of ``configure``)."""
    asked = logging.getLevelName(level.upper())
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, asked))
    for sdk in SECRETS_AT_DEBUG:
        logging.getLogger(sdk).setLevel(max(logging.INFO, asked))
