"""The Health page: each provider now (breaker, work waiting), the last 24 hours of calls, and
the workspace's alerts (incidents), which owners and admins acknowledge, resolve, snooze or
ignore, with each alert's history. Who may do what is decided by backend/health/alert_actions.py;
the page only disables the buttons for viewers."""

from __future__ import annotations

from collections.abc import Callable

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.orm import Session

from backend.health import alert_actions
from backend.health import service as health
from backend.platform.actors import Actor
from console.state.base import SessionState, change, read
from console.state.formatting import when
from models import Alert, AlertState

_BREAKER_WORDS = {"closed": "closed", "open": "open", "half_open": "testing (half-open)"}
Rows = list[dict[str, str]]


def provider_now_row(p: health.ProviderNow) -> dict[str, str]:
    breaker = _BREAKER_WORDS.get(p.breaker, p.breaker)
    if p.breaker == "open" and p.opened_until is not None:
        breaker = f"open until {when(p.opened_until)}"
    return {
        "provider": p.name,
        "breaker": breaker,
        "waiting": str(p.waiting),
        "state": p.message or ("answering" if p.breaker == "closed" else ""),
        "error": (p.last_error or "")[:200],
        "troubled": "yes" if p.troubled else "",
    }


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


def _rows_of_health(s: Session, actor: Actor) -> tuple[Rows, Rows, Rows]:
    w = actor.workspace_id
    providers = [
        {
            "provider": p.provider,
            "calls": str(p.calls),
            "success": f"{p.success_rate:.1%}",
            "latency": "" if p.avg_latency_ms is None else f"{p.avg_latency_ms} ms",
        }
        for p in health.provider_health(s, workspace_id=w)
    ]
    rows = [alert_row(a) for a in health.listed_alerts(s, workspace_id=w)]
    now = [provider_now_row(p) for p in health.providers_now(s, workspace_id=w)]
    return providers, rows, now


class HealthState(SessionState):
    providers: list[dict[str, str]] = []
    alerts: list[dict[str, str]] = []
    # Each provider now: its breaker and the work waiting on it (an outage shows here at once,
    # while the 24-hour success rate above still looks fine).
    now: list[dict[str, str]] = []
    # The history dialog: which alert, and its steps newest first.
    history_open: bool = False
    history_id: str = ""
    history_title: str = ""
    history: list[dict[str, str]] = []

    @rx.var
    def troubles(self) -> list[str]:
        return [
            f"{row['provider']}: breaker {row['breaker']}, {row['waiting']} job(s) waiting"
            for row in self.now
            if row["troubled"]
        ]

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

    async def _refresh(self) -> None:
        found = await read(self, _rows_of_health)
        if not found.signed_out:
            self.providers, self.alerts, self.now = found.get()
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
        found = await read(self, _rows_of_health)
        if found.signed_out:
            return self._login_redirect()
        self.providers, self.alerts, self.now = found.get()
        return None
