"""The Timeline page: what the workspace's buyers did (opens, clicks, payments), newest first."""

from __future__ import annotations

import reflex as rx
from reflex.event import EventSpec

from backend.engagement import timeline as engagement
from console.state.base import SessionState, read
from console.state.formatting import when


class TimelineState(SessionState):
    rows: list[dict[str, str]] = []

    @rx.event
    async def load(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        found = await read(
            self,
            lambda s, a: [
                {"at": when(e.occurred_at), "source": e.source, "name": e.name, "subject": e.who}
                for e in engagement.timeline(s, workspace_id=a.workspace_id)
            ],
        )
        if found.signed_out:
            return self._login_redirect()
        self.rows = found.get()
        return None
