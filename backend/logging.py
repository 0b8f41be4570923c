"""Structured logging for every process. Never pass secrets or webhook bodies as fields.

Tested in tests/api/webhooks/test_intake.py and tests/api/test_oauth.py (what is logged, and
that no secret is)."""

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
    # APScheduler logs every run of every job at INFO: a heartbeat every few seconds drowns the
    # rest; alembic logs two lines at INFO each time readiness reads the database's revision
    # (every /readyz probe). Their warnings still come through.
    for noisy in ("apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
