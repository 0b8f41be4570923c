"""The Health page: a tile per connected provider (its status in words, figures, breaker and
what waits on it), charts over 15 minutes, 24 hours or 7 days, and the workspace's alerts
(incidents), which owners and admins acknowledge, resolve, snooze or ignore, with each alert's
history. Who may do what is decided by backend/health/alert_actions.py;
the page only disables the buttons for viewers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.orm import Session

from backend.health import alert_actions, failures
from backend.health import page as page_figures
from backend.health import service as health
from backend.platform.actors import Actor
from backend.platform.provider_failures import provider_name
from console.state.base import SessionState, change, read
from console.state.formatting import when
from console.state.health_view import (
    HealthView,
    TileView,
    failure_rows,
    health_view,
    jobs_href,
)
from models import Alert, AlertState, utcnow

Rows = list[dict[str, str]]


def alert_row(a: Alert) -> dict[str, str]:
    return {
        "id": str(a.id),
        "rule": a.type,
        "severity": a.priority.value,
        "state": a.state.value,
        "count": str(a.count),
        "first_seen": when(a.first_seen_at),
        "last_seen": when(a.last_seen_at),
        "regressed": "regressed" if a.regressed else "",
        "message": a.message,
        # Only an unresolved alert can be acted on (the service refuses the rest in words).
        "actionable": "" if a.state is AlertState.RESOLVED else "yes",
    }


def history_rows(steps: list[alert_actions.Step]) -> Rows:
    return [{"at": when(h.at), "what": h.what, "who": h.who, "detail": h.detail} for h in steps]


# What each action's toast says once the service has done it.
_DONE = {
    "acknowledge": "Alert acknowledged.",
    "resolve": "Alert resolved.",
    "snooze": "Alert snoozed for an hour.",
    "ignore": "Alert ignored until it escalates.",
}
Act = Callable[[Session, Actor, int], object]
_ACTIONS: dict[str, Act] = {
    "acknowledge": lambda s, a, i: alert_actions.acknowledge(s, actor=a, alert_id=i),
    "resolve": lambda s, a, i: alert_actions.resolve(s, actor=a, alert_id=i),
    # The service's default is an hour; the page offers that one choice.
    "snooze": lambda s, a, i: alert_actions.snooze(s, actor=a, alert_id=i),
    "ignore": lambda s, a, i: alert_actions.ignore(s, actor=a, alert_id=i),
}


def _alert_id(value: str) -> int:
    """An id from the page; anything else is refused like an id of another workspace."""
    try:
        return int(value)
    except ValueError:
        return 0


def _rows_of_health(
    s: Session, actor: Actor, window: str = page_figures.DEFAULT_WINDOW, provider: str = ""
) -> tuple[HealthView, Rows]:
    """The page for the actor's workspace: tiles and charts over ``window`` (the charts of
    ``provider``, or of the most troubled provider), and the alerts."""
    w = actor.workspace_id
    found = page_figures.read(s, workspace_id=w, window=window, provider=provider or None)
    rows = [alert_row(a) for a in health.listed_alerts(s, workspace_id=w)]
    return health_view(found), rows


def _failures_of(s: Session, actor: Actor, provider: str) -> tuple[str, Rows, bool]:
    """(the dialog's title, the failures grouped by error, whether only the latest were read)."""
    found = failures.recent_failures(s, workspace_id=actor.workspace_id, provider=provider)
    title = f"{provider_name(provider)}: failed calls in the last hour"
    return title, failure_rows(found, utcnow()), found.capped


class HealthState(SessionState):
    alerts: list[dict[str, str]] = []
    # The window the tiles and charts cover (page.WINDOWS) and the provider the charts are of.
    window: str = page_figures.DEFAULT_WINDOW
    chart_provider: str = ""
    tiles: list[TileView] = []
    # Plotly figures (data and layout) as plain dicts.
    outcomes_chart: dict[str, Any] = {}
    latency_chart: dict[str, Any] = {}
    intake_chart: dict[str, Any] = {}
    queue_chart: dict[str, Any] = {}
    oldest_job: str = ""
    has_calls: bool = False
    has_intake: bool = False
    has_queue: bool = False
    # The failures dialog of a tile.
    failures_open: bool = False
    failures_title: str = ""
    failures_capped: bool = False
    failures: list[dict[str, str]] = []
    failures_jobs_href: str = ""
    # The history dialog: which alert, and its steps newest first.
    history_open: bool = False
    history_id: str = ""
    history_title: str = ""
    history: list[dict[str, str]] = []

    def _show(self, view: HealthView, alerts: Rows) -> None:
        self.tiles, self.chart_provider = view.tiles, view.chart_provider
        self.outcomes_chart, self.latency_chart = view.outcomes, view.latency
        self.intake_chart, self.queue_chart = view.intake, view.queue
        self.oldest_job = view.oldest_job
        self.has_calls, self.has_intake, self.has_queue = (
            view.has_calls,
            view.has_intake,
            view.has_queue,
        )
        self.alerts = alerts

    async def _act(self, action: str, alert_id: str) -> EventSpec | None:
        act, found_id = _ACTIONS[action], _alert_id(alert_id)
        outcome = await change(self, lambda s, a: act(s, a, found_id))
        if outcome.signed_out:
            return self._login_redirect()
        if outcome.refused is not None:
            refused: EventSpec = rx.toast.error(outcome.refused)
            return refused
        await self._refresh()
        done: EventSpec = rx.toast.success(_DONE[action])
        return done

    async def _read_page(self) -> bool:
        """Read the page again for the chosen window and provider; False when signed out."""
        window, provider = self.window, self.chart_provider
        found = await read(self, lambda s, a: _rows_of_health(s, a, window, provider))
        if found.signed_out:
            return False
        self._show(*found.get())
        return True

    async def _refresh(self) -> None:
        await self._read_page()
        if self.history_open and self.history_id:
            await self._load_history(self.history_id)

    async def _load_history(self, alert_id: str) -> bool:
        found_id = _alert_id(alert_id)
        found = await read(
            self,
            lambda s, a: history_rows(
                alert_actions.history(s, workspace_id=a.workspace_id, alert_id=found_id)
            ),
        )
        if found.signed_out:
            return False
        self.history = found.get()
        return True

    @rx.event
    async def acknowledge(self, alert_id: str) -> EventSpec | None:
        return await self._act("acknowledge", alert_id)

    @rx.event
    async def resolve(self, alert_id: str) -> EventSpec | None:
        return await self._act("resolve", alert_id)

    @rx.event
    async def snooze(self, alert_id: str) -> EventSpec | None:
        return await self._act("snooze", alert_id)

    @rx.event
    async def ignore(self, alert_id: str) -> EventSpec | None:
        return await self._act("ignore", alert_id)

    @rx.event
    async def show_history(self, alert_id: str) -> EventSpec | None:
        """Any role may read an alert's history; another workspace's id finds none."""
        if not await self._load_history(alert_id):
            return self._login_redirect()
        self.history_id = alert_id
        self.history_title = next(
            (f"{a['rule']}: {a['message']}" for a in self.alerts if a["id"] == alert_id), ""
        )
        self.history_open = True
        return None

    @rx.event
    def set_history_open(self, is_open: bool) -> None:
        self.history_open = is_open

    @rx.event
    async def load(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        if not await self._read_page():
            return self._login_redirect()
        return None

    @rx.event
    async def set_window(self, window: str | list[str]) -> EventSpec | None:
        """15 minutes, 24 hours or 7 days (page.WINDOWS); anything else is the default. (The
        segmented control may hand a list; the page's allows one choice.)"""
        chosen = window if isinstance(window, str) else next(iter(window), "")
        self.window = page_figures.window_of(chosen).key
        if not await self._read_page():
            return self._login_redirect()
        return None

    @rx.event
    async def chart(self, provider: str) -> EventSpec | None:
        """Draw the charts of this provider (one of the workspace's tiles; else the first)."""
        self.chart_provider = provider
        if not await self._read_page():
            return self._login_redirect()
        return None

    @rx.event
    async def show_failures(self, provider: str) -> EventSpec | None:
        """A tile's failed calls of the last hour, grouped by error; the workspace's only."""
        found = await read(self, lambda s, a: _failures_of(s, a, provider))
        if found.signed_out:
            return self._login_redirect()
        self.failures_title, self.failures, self.failures_capped = found.get()
        self.failures_jobs_href = jobs_href(provider)
        self.failures_open = True
        return None

    @rx.event
    def set_failures_open(self, is_open: bool) -> None:
        self.failures_open = is_open
