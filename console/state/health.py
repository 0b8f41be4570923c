"""The Health page: each provider now (breaker, work waiting), the last 24 hours of calls, and
the open alerts, which owners and admins acknowledge."""

from __future__ import annotations

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.orm import Session

from backend.health import alert_actions
from backend.health import service as health
from backend.platform.actors import Actor
from console.state.base import SessionState, change, read
from console.state.formatting import when

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


class HealthState(SessionState):
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
        def work(s: Session, actor: Actor) -> None:
            alert_actions.acknowledge(s, actor=actor, alert_id=int(alert_id))

        outcome = await change(self, work)
        if outcome.signed_out:
            return self._login_redirect()
        if outcome.refused is not None:
            refused: EventSpec = rx.toast.error(outcome.refused)
            return refused
        found = await read(self, _rows_of_health)
        if not found.signed_out:
            self.providers, self.alerts, self.now = found.get()
        done: EventSpec = rx.toast.success("Alert acknowledged.")
        return done

    @rx.event
    async def load(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        found = await read(self, _rows_of_health)
        if found.signed_out:
            return self._login_redirect()
        self.providers, self.alerts, self.now = found.get()
        return None
