"""States of the list pages (Integrations, Timeline, Health): each loads its rows
for the operator's workspace in a worker thread and keeps plain dicts, never ORM objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.orm import Session

from backend.connections import views
from backend.db import session_scope
from backend.engagement import timeline as engagement
from backend.health import service as health
from backend.platform import alerts as alert_service
from backend.platform.actors import Actor
from console.state.base import SessionState
from console.state.formatting import when

T = TypeVar("T")


class ListPageState(SessionState):
    """Shared shape: authenticate, then read in a thread."""

    async def _read(self, reader: Callable[[Session, int], T]) -> T | None:
        actor = await self._authenticate()
        if actor is None:
            return None

        def work() -> T:
            with session_scope() as session:
                return reader(session, actor.workspace_id)

        result: T = await rx.run_in_thread(work)
        return result


class IntegrationsState(ListPageState):
    rows: list[dict[str, str]] = []

    @rx.event
    async def load(self) -> EventSpec | None:
        found = await self._read(
            lambda s, w: [
                {
                    "provider": i.provider,
                    "name": i.display_name,
                    "status": i.status.value,
                    "checked": when(i.last_checked_at),
                    "error": i.last_error or "",
                }
                for i in views.list_connections(s, workspace_id=w)
            ]
        )
        if found is None:
            return self._login_redirect()
        self.rows = found
        return None


class TimelineState(ListPageState):
    rows: list[dict[str, str]] = []

    @rx.event
    async def load(self) -> EventSpec | None:
        found = await self._read(
            lambda s, w: [
                {"at": when(e.occurred_at), "source": e.source, "name": e.name, "subject": e.who}
                for e in engagement.timeline(s, workspace_id=w)
            ]
        )
        if found is None:
            return self._login_redirect()
        self.rows = found
        return None


_BREAKER_WORDS = {"closed": "closed", "open": "open", "half_open": "testing (half-open)"}


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


def _rows_of_health(
    s: Session, w: int
) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    providers = [
        {
            "provider": p.provider,
            "calls": str(p.calls),
            "success": f"{p.success_rate:.1%}",
            "latency": "" if p.avg_latency_ms is None else f"{p.avg_latency_ms} ms",
        }
        for p in health.provider_health(s, workspace_id=w)
    ]
    rows = [
        {
            "id": str(a.id),
            "at": when(a.created_at),
            "priority": a.priority.value,
            "message": a.message,
            "state": a.state.value,
        }
        for a in health.open_alerts(s, workspace_id=w)
    ]
    now = [provider_now_row(p) for p in health.providers_now(s, workspace_id=w)]
    return providers, rows, now


class HealthState(ListPageState):
    providers: list[dict[str, str]] = []
    alerts: list[dict[str, str]] = []
    # Each provider now: its breaker and the work waiting on it (an outage shows here at once,
    # while the 24-hour success rate above still looks fine).
    now: list[dict[str, str]] = []

    @rx.var
    def troubles(self) -> list[str]:
        return [
            f"{row['provider']}: breaker {row['breaker']}, {row['waiting']} job(s) waiting"
            for row in self.now
            if row["troubled"]
        ]

    @rx.event
    async def acknowledge(self, alert_id: str) -> EventSpec | None:
        def change(s: Session, actor: Actor) -> None:
            alert_service.acknowledge(s, actor=actor, alert_id=int(alert_id))

        outcome = await self._apply(change)
        if outcome.actor is None:
            return self._login_redirect()
        if outcome.refused is not None:
            refused: EventSpec = rx.toast.error(outcome.refused)
            return refused
        found = await self._read(_rows_of_health)
        if found is not None:
            self.providers, self.alerts, self.now = found
        done: EventSpec = rx.toast.success("Alert acknowledged.")
        return done

    @rx.event
    async def load(self) -> EventSpec | None:
        found = await self._read(_rows_of_health)
        if found is None:
            return self._login_redirect()
        self.providers, self.alerts, self.now = found
        return None
