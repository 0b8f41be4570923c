"""Settings → Replies: the SendGrid Inbound Parse URL an owner or admin pastes into SendGrid so
that leads' replies reach the hub (backend/email/inbound.py). The URL carries the workspace's
secret, so it is fetched only when asked for, by owners and admins, and never for viewers."""

from __future__ import annotations

import reflex as rx
from reflex.event import EventSpec

from backend.config import get_settings
from backend.email import inbound
from console.state.base import SessionState, change


class InboundParseState(SessionState):
    parse_url: str = ""
    parse_error: str = ""

    @rx.event
    async def show_parse_url(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        sidecar = get_settings().public_sidecar_url
        done = await change(
            self,
            lambda s, a: inbound.show_parse_url(s, actor=a, sidecar_url=sidecar),
            needs="change",
            what="see the Inbound Parse URL",
        )
        if done.signed_out:
            return self._login_redirect()
        if done.refused is not None:
            self.parse_url, self.parse_error = "", done.refused
            return None
        self.parse_url, self.parse_error = done.get(), ""
        return None

    @rx.event
    def hide_parse_url(self) -> None:
        self.parse_url = ""
