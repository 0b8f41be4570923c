"""A show's claims import (console/pages/show_claims.py): a CSV file is previewed (what
importing it would do, and every bad row) before anything changes, then applied at once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.orm import Session

from backend.platform.actors import Actor
from backend.shows import claims_import
from console.state.base import change, read
from console.state.show.base import Opened, ShowState, refused
from console.state.show.views import Panel, import_view, read_panel


class ClaimsState(ShowState):
    import_file: str = ""
    import_summary: str = ""
    import_errors: list[str] = []
    import_notes: list[str] = []
    import_ready: bool = False
    importing: bool = False
    _import_data: bytes = b""

    def _on_open(self, opened: Opened | None) -> None:
        self._reset_import()

    def _reset_import(self) -> None:
        self.import_file, self.import_summary = "", ""
        self.import_errors, self.import_notes = [], []
        self.import_ready, self.importing = False, False
        self._import_data = b""

    @rx.event
    async def preview_import(self, files: list[rx.UploadFile]) -> EventSpec | None:
        """A chosen CSV file: what importing it would do, and every bad row. Changes nothing."""
        self._reset_import()
        if not files or not self.loaded:
            return None
        upload = files[0]
        data = await upload.read()
        show_id = int(self.show_ref)
        self.import_file = upload.name or "claims.csv"
        found = await read(
            self,
            lambda s, a: import_view(
                claims_import.preview(s, workspace_id=a.workspace_id, show_id=show_id, text=data)
            ),
        )
        if found.signed_out:
            return self._login_redirect()
        if found.refused is not None:
            self.import_summary = "This file cannot be imported."
            self.import_errors = [found.refused]
            return None
        view = found.get()
        self.import_summary, self.import_errors = view.summary, view.errors
        self.import_notes, self.import_ready = view.notes, view.ready
        self._import_data = data if view.ready else b""
        return None

    @rx.event
    def cancel_import(self) -> None:
        self._reset_import()

    @rx.event(background=True)
    async def apply_import(self) -> AsyncIterator[EventSpec]:
        async with self:
            if self.importing or not self._import_data:
                return
            self.importing = True
            view, data = self._view(), self._import_data

        def work(session: Session, actor: Actor) -> tuple[str, Panel]:
            result = claims_import.apply(session, actor=actor, show_id=view.show_id, text=data)
            session.flush()
            return result.message, read_panel(session, actor.workspace_id, view)

        outcome = await change(self, work)
        if outcome.signed_out:
            yield self._login_redirect()
            return
        if outcome.refused is not None:
            async with self:
                self.importing = False
            yield refused(outcome.refused)
            return
        message, panel = outcome.get()
        async with self:
            self._reset_import()
            self._apply_panel(panel)
        yield rx.toast.success(message)
