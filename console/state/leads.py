"""The Leads page (filters, search, keyset pages) and a lead's page (details, history, e-mails
with their tracking, sequence progress, a note, Stop).

The list is paged on the server by keyset (``backend/leads/views.py``): the state keeps the
cursor each visited page started at, so Previous goes back exactly and Next never repeats a row.
The lead page polls ``views.change_mark`` every two seconds (one statement) and reads the page
again only when the mark moved: SendGrid's events (an open in the sandbox's mailbox), a reply,
another operator's note appear without a reload.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.orm import Session

from backend.leads import service as leads
from backend.leads import views
from backend.platform.actors import Actor
from console.state.base import SessionState, change, read
from console.state.formatting import when

ANY = "all"


def label(status: str) -> str:
    """A status in words: proposal_viewed is "Proposal viewed"."""
    return status.replace("_", " ").capitalize()


def lead_row(row: views.LeadRow) -> dict[str, str]:
    return {
        "id": str(row.id),
        "href": f"/leads/{row.id}",
        "name": row.name,
        "email": row.email,
        "company": row.company or "",
        "status": row.status,
        "status_label": label(row.status),
        "source": row.source,
        "service_type": row.service_type or "",
        "inquiries": str(row.inquiries),
        "last_activity": when(row.last_activity),
        "created": when(row.created_at),
    }


def _any(value: str) -> str:
    return "" if value == ANY else value


class LeadsState(SessionState):
    rows: list[dict[str, str]] = []
    loaded: bool = False
    status_filter: str = ANY
    source_filter: str = ANY
    service_filter: str = ANY
    search: str = ""
    statuses: list[dict[str, str]] = [{"value": s, "label": label(s)} for s in views.STATUSES]
    sources: list[str] = []
    service_types: list[str] = []
    page: int = 1
    has_next: bool = False
    # Where each page the operator has visited starts ("" for the first): Previous goes back.
    _starts: list[str] = [""]
    _next: str = ""

    @rx.var
    def page_label(self) -> str:
        return f"Page {self.page}"

    @rx.var
    def filtered(self) -> bool:
        chosen = (self.status_filter, self.source_filter, self.service_filter)
        return bool(self.search.strip()) or chosen != (ANY, ANY, ANY)

    def _filters(self) -> views.LeadFilter:
        return views.LeadFilter(
            status=_any(self.status_filter),
            source=_any(self.source_filter),
            service_type=_any(self.service_filter),
            search=self.search,
        )

    async def _read(self, start: str) -> EventSpec | None:
        filters = self._filters()

        def work(session: Session, actor: Actor) -> tuple[views.LeadPage, views.FilterChoices]:
            w = actor.workspace_id
            return (
                views.list_leads(session, workspace_id=w, filters=filters, after=start or None),
                views.filter_choices(session, workspace_id=w),
            )

        found = await read(self, work)
        if found.signed_out:
            return self._login_redirect()
        page, choices = found.get()
        self.rows = [lead_row(r) for r in page.rows]
        self.has_next, self._next = page.next_cursor is not None, page.next_cursor or ""
        self.sources, self.service_types = choices.sources, choices.service_types
        self.loaded = True
        return None

    async def _first_page(self) -> EventSpec | None:
        self.page, self._starts = 1, [""]
        return await self._read("")

    @rx.event
    async def load(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        return await self._first_page()

    @rx.event
    async def set_status_filter(self, value: str) -> EventSpec | None:
        self.status_filter = value if value in views.STATUSES else ANY
        return await self._first_page()

    @rx.event
    async def set_source_filter(self, value: str) -> EventSpec | None:
        self.source_filter = value[:40] or ANY
        return await self._first_page()

    @rx.event
    async def set_service_filter(self, value: str) -> EventSpec | None:
        self.service_filter = value[:60] or ANY
        return await self._first_page()

    @rx.event
    async def set_search(self, value: str) -> EventSpec | None:
        self.search = value[:120]
        return await self._first_page()

    @rx.event
    async def clear_filters(self) -> EventSpec | None:
        self.status_filter = self.source_filter = self.service_filter = ANY
        self.search = ""
        return await self._first_page()

    @rx.event
    async def next_page(self) -> EventSpec | None:
        if not self.has_next or not self._next:
            return None
        self._starts = [*self._starts, self._next]
        self.page = len(self._starts)
        return await self._read(self._next)

    @rx.event
    async def previous_page(self) -> EventSpec | None:
        if len(self._starts) <= 1:
            return None
        self._starts = self._starts[:-1]
        self.page = len(self._starts)
        return await self._read(self._starts[-1])


# -- a lead ---------------------------------------------------------------------------------


def email_row(e: views.EmailRow) -> dict[str, str]:
    return {
        "id": str(e.id),
        "what": e.what,
        "template": e.template,
        "to": e.to_email,
        "status": e.status,
        "status_label": label(e.status),
        "sent": when(e.sent_at),
        "first_open": when(e.first_open_at),
        "last_open": when(e.last_open_at),
        "opens": str(e.open_count),
        "clicks": str(e.click_count),
        "reason": e.reason or "",
    }


def message_row(m: views.MessageRow) -> dict[str, str]:
    return {"id": str(m.id), "at": when(m.at), "kind": m.kind, "body": m.body}


def enrolment_row(e: views.EnrolmentRow) -> dict[str, str]:
    done = e.status == "completed"
    return {
        "id": str(e.id),
        "sequence": e.sequence,
        "status": e.status,
        "status_label": label(e.status),
        "progress": f"all {e.steps} steps sent"
        if done
        else f"step {min(e.step, e.steps) if e.steps else e.step} of {e.steps}",
        "next_due": when(e.next_due_at) if e.status == "active" else "",
        "stop_reason": e.stop_reason or "",
        "stopped": when(e.stopped_at),
        "active": "yes" if e.status == "active" else "",
    }


def _details(d: views.LeadDetail) -> dict[str, str]:
    return {
        "name": d.name,
        "email": d.email,
        "phone": d.phone or "",
        "company": d.company or "",
        "status": d.status,
        "status_label": label(d.status),
        "source": d.source,
        "service_type": d.service_type or "",
        "event_date": d.event_date.isoformat() if d.event_date else "",
        "consent": "yes" if d.marketing_consent else "no",
        "time_zone": d.time_zone or "the workspace's",
        "inquiries": str(d.inquiries),
        "created": when(d.created_at),
        "last_activity": when(d.last_activity),
    }


class LeadState(SessionState):
    lead_ref: str = ""  # the lead's id, from the URL
    loaded: bool = False
    missing: str = ""
    lead: dict[str, str] = {}
    messages: list[dict[str, str]] = []
    emails: list[dict[str, str]] = []
    enrolments: list[dict[str, str]] = []
    note_draft: str = ""
    note_error: str = ""
    _mark: str = ""

    def _lead_from_url(self) -> str:
        path = urlsplit(str(self.router.url)).path.rstrip("/")
        return path.rsplit("/", 1)[-1]

    def _apply(self, detail: views.LeadDetail, mark: str | None) -> None:
        self.lead = _details(detail)
        self.messages = [message_row(m) for m in detail.messages]
        self.emails = [email_row(e) for e in detail.emails]
        self.enrolments = [enrolment_row(e) for e in detail.enrolments]
        self._mark = mark or ""
        self.loaded = True

    @rx.event
    async def load(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        ref = self._lead_from_url()
        self.lead_ref, self.loaded, self.missing, self._mark = ref, False, "", ""
        self.lead, self.messages, self.emails, self.enrolments = {}, [], [], []
        self.note_draft = self.note_error = ""
        if not ref.isdigit():
            self.missing = views.NOT_FOUND
            return None
        lead_id = int(ref)

        def work(session: Session, actor: Actor) -> tuple[views.LeadDetail, str | None]:
            w = actor.workspace_id
            return (
                views.lead_detail(session, workspace_id=w, lead_id=lead_id),
                views.change_mark(session, workspace_id=w, lead_id=lead_id),
            )

        found = await read(self, work)
        if found.signed_out:
            return self._login_redirect()
        if found.refused is not None:
            self.missing = found.refused
            return None
        self._apply(*found.get())
        return None

    @rx.event
    async def poll(self) -> EventSpec | None:
        """Every two seconds while the page is open: the page again only if the mark moved."""
        return await self._refresh(self._mark)

    async def _refresh(self, seen: str) -> EventSpec | None:
        """Read the page again if its mark is no longer ``seen`` ("" reads it in any case)."""
        if not self.loaded or not self.lead_ref.isdigit():
            return None
        lead_id = int(self.lead_ref)

        def work(session: Session, actor: Actor) -> tuple[views.LeadDetail, str | None] | None:
            w = actor.workspace_id
            mark = views.change_mark(session, workspace_id=w, lead_id=lead_id)
            if mark is None or mark == seen:
                return None
            return views.lead_detail(session, workspace_id=w, lead_id=lead_id), mark

        found = await read(self, work)
        if found.signed_out:
            return self._login_redirect()
        if found.ok and (fresh := found.get()) is not None:
            self._apply(*fresh)
        return None

    async def _change(
        self, work: Callable[[Session, Actor], bool], done: str, unchanged: str
    ) -> EventSpec | None:
        outcome = await change(self, work)
        if outcome.signed_out:
            return self._login_redirect()
        if outcome.refused is not None:
            failed: EventSpec = rx.toast.error(outcome.refused)
            return failed
        await self._refresh("")
        toast: EventSpec = rx.toast.success(done) if outcome.get() else rx.toast.info(unchanged)
        return toast

    @rx.event
    def set_note_draft(self, value: str) -> None:
        self.note_draft, self.note_error = value[: leads.NOTE_LIMIT + 1], ""

    @rx.event
    async def add_note(self) -> EventSpec | None:
        if not self.loaded or not self.lead_ref.isdigit():
            return None
        lead_id, body = int(self.lead_ref), self.note_draft
        outcome = await change(
            self, lambda s, a: leads.add_note(s, actor=a, lead_id=lead_id, body=body)
        )
        if outcome.signed_out:
            return self._login_redirect()
        if outcome.refused is not None:
            self.note_error = outcome.refused
            return None
        self.note_draft = ""
        return await self._refresh("")

    @rx.event
    async def stop_enrolment(self, enrolment_id: str) -> EventSpec | None:
        if not self.loaded or not self.lead_ref.isdigit() or not enrolment_id.isdigit():
            return None
        lead_id, enrolment = int(self.lead_ref), int(enrolment_id)
        return await self._change(
            lambda s, a: leads.stop_enrolment(s, actor=a, lead_id=lead_id, enrolment_id=enrolment),
            "Sequence stopped.",
            "That sequence had already finished or stopped.",
        )
