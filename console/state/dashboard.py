"""The Dashboard: the workspace's figures at a glance, refreshed every few seconds."""

from __future__ import annotations

import reflex as rx
from reflex.event import EventSpec

from backend.health import dashboard
from console.state.base import SessionState, read


def _describe_heartbeat(age: int | None) -> tuple[str, bool]:
    if age is None:
        return "never seen: the scheduler has not run", False
    # Three missed beats (default every 5 s) mean the process is gone or stuck.
    alive = age <= 20
    return (f"last beat {age} s ago" if alive else f"stopped: last beat {age} s ago"), alive


class DashboardState(SessionState):
    connected_integrations: int = 0
    open_alerts: int = 0
    queued_jobs: int = 0
    dead_jobs: int = 0
    shows: int = 0
    heartbeat_text: str = ""
    scheduler_alive: bool = False
    loaded: bool = False

    @rx.event
    async def load(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        found = await read(self, lambda s, a: dashboard.figures(s, workspace_id=a.workspace_id))
        if found.signed_out:
            return self._login_redirect()
        figures = found.get()
        self.connected_integrations = figures.connected_integrations
        self.open_alerts = figures.open_alerts
        self.queued_jobs = figures.queued_jobs
        self.dead_jobs = figures.dead_jobs
        self.shows = figures.shows
        self.heartbeat_text, self.scheduler_alive = _describe_heartbeat(
            figures.heartbeat_age_seconds
        )
        self.loaded = True
        return None
