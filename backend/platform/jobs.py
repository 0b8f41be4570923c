"""The platform's own work: the job that applies stored webhooks (``inbox.process``), the
scheduler's heartbeat, the rescue of jobs whose worker died, and retention of old rows.

Covered by tests/jobs/test_discovery.py (what is declared here is loaded).
"""

from __future__ import annotations

import os
import socket

import structlog

from backend.config import get_settings
from backend.db import session_scope
from backend.platform import heartbeat, inbox, outbox, retention
from backend.platform.periodic import periodic

log = structlog.get_logger("outbox")

# -- outbox job kinds -----------------------------------------------------------------------

outbox.declare(
    inbox.PROCESS_KIND,
    inbox.process,
    max_attempts=8,
    backoff=(5, 30, 120, 600, 1800, 3600, 7200),
    prepare=inbox.load_events,
)

# -- periodic jobs --------------------------------------------------------------------------

INSTANCE = f"{socket.gethostname()}:{os.getpid()}"


@periodic(
    id="heartbeat",
    seconds=get_settings().heartbeat_seconds,
    description="Record that this scheduler process is alive.",
    # Every process beats for itself: the console shows the newest beat.
    exclusive=False,
)
def record_heartbeat() -> None:
    with session_scope() as session:
        heartbeat.beat(session, instance=INSTANCE)


@periodic(
    id="rescue-expired-leases",
    seconds=get_settings().outbox_rescue_seconds,
    description="Make jobs of workers that died claimable again.",
)
def rescue_expired_leases() -> None:
    with session_scope() as session:
        rescued = outbox.rescue_expired_leases(session)
    if rescued:
        log.warning("outbox.leases_rescued", jobs=rescued)


@periodic(
    id="retention",
    seconds=86400,
    description="Purge finished jobs, handled webhook bodies and old call logs.",
)
def purge_old_rows() -> None:
    with session_scope() as session:
        retention.purge_old_rows(session)
