"""The Sequences page: the workspace's follow-up sequences, each with its trigger, how many
leads it enrolled (active, completed, stopped) and Pause / Resume (owners and admins), and each
step's delay, template and send window with its e-mails queued, sent, opened, clicked and
skipped. Read through ``backend/email/sequences/service.overview``, scoped by workspace there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.orm import Session

from backend.email import purposes
from backend.email.sequences import service as sequences
from backend.email.sequences import views as sequence_views
from console.state.base import SessionState, change, read

TRIGGER_LABELS = {
    "lead_created": "A new lead",
    "proposal_sent": "A proposal sent",
    "contract_pending": "A contract waiting to be signed or paid",
}


def delay_label(minutes: int) -> str:
    """2880 -> "2 days", 90 -> "90 minutes", 0 -> "at once"."""
    if minutes == 0:
        return "at once"
    for size, unit in ((1440, "day"), (60, "hour"), (1, "minute")):
        if minutes % size == 0:
            n = minutes // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{minutes} minutes"  # pragma: no cover (every number divides by 1)


def window_label(start: int | None, end: int | None) -> str:
    if start is None or end is None:
        return "any time"
    return f"{start}:00 to {end}:00, their time"


@dataclass
class SequencesSnapshot:
    sequences: list[dict[str, str]] = field(default_factory=list)
    steps: list[dict[str, str]] = field(default_factory=list)


def read_snapshot(session: Session, workspace_id: int) -> SequencesSnapshot:
    """The page's two tables, from the workspace's sequences only."""
    snapshot = SequencesSnapshot()
    for view in sequence_views.overview(session, workspace_id=workspace_id):
        snapshot.sequences.append(
            {
                "id": str(view.id),
                "name": view.name,
                "trigger": TRIGGER_LABELS.get(view.trigger, view.trigger),
                "paused": "yes" if view.paused else "no",
                "steps": str(len(view.steps)),
                "enrolled": str(view.enrolled),
                "active": str(view.active),
                "completed": str(view.completed),
                "stopped": str(view.stopped),
            }
        )
        previous = "enrolment"
        for step in view.steps:
            known = purposes.PURPOSES.get(step.purpose)
            snapshot.steps.append(
                {
                    "sequence": view.name,
                    "step": str(step.position),
                    "delay": f"{delay_label(step.delay_minutes)} after the {previous}",
                    "template": known.label if known else step.purpose,
                    "window": window_label(step.window_start_hour, step.window_end_hour),
                    "queued": str(step.queued),
                    "sent": str(step.sent),
                    "opened": str(step.opened),
                    "clicked": str(step.clicked),
                    "skipped": str(step.skipped),
                }
            )
            previous = "previous step"
    return snapshot


class SequencesState(SessionState):
    sequences: list[dict[str, str]] = []
    steps: list[dict[str, str]] = []

    @rx.event
    async def load(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        return await self._reload()

    async def _reload(self) -> EventSpec | None:
        found = await read(self, lambda s, a: read_snapshot(s, a.workspace_id))
        if found.signed_out:
            return self._login_redirect()
        snapshot = found.get()
        self.sequences, self.steps = snapshot.sequences, snapshot.steps
        return None

    async def _set_paused(self, sequence_id: str, paused: bool) -> EventSpec | None:
        if not sequence_id.isdigit():
            return None
        wanted = int(sequence_id)
        act = sequences.pause if paused else sequences.resume
        done = await change(self, lambda s, a: act(s, actor=a, sequence_id=wanted))
        if done.signed_out:
            return self._login_redirect()
        if done.refused is not None:
            refused: EventSpec = rx.toast.error(done.refused)
            return refused
        if (signed_out := await self._reload()) is not None:
            return signed_out
        said: EventSpec = rx.toast.success(
            "Paused: no step goes and no lead is enrolled until you resume it."
            if paused
            else "Resumed: steps that fell due while it was paused go within 15 minutes."
        )
        return said

    @rx.event
    async def pause(self, sequence_id: str) -> EventSpec | None:
        done = await self._set_paused(sequence_id, True)
        return done

    @rx.event
    async def resume(self, sequence_id: str) -> EventSpec | None:
        done = await self._set_paused(sequence_id, False)
        return done
