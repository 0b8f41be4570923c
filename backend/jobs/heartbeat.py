"""The scheduler's pulse: the console shows its age, and an old one means nothing runs at night."""

from __future__ import annotations

import os
import socket

from backend.config import get_settings
from backend.db import session_scope
from backend.platform import heartbeat
from backend.platform.periodic import periodic

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
