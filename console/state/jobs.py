"""The Jobs page: the queue, what runs, what died (with replay), the kinds paused for this
workspace (and by the platform, for all), each provider's circuit and rate limit, and the latest
webhooks received."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.orm import Session

# backend.jobs loads every domain's jobs.py: every kind is listed on the page, not only those
# this process has used.
from backend import jobs  # noqa: F401
from backend.platform import circuits, inbox, outbox, outbox_operators, outbox_pauses, outbox_views
from backend.platform.actors import Actor
from console.state.base import SessionState, change, read
from console.state.formatting import when


@dataclass
class JobsSnapshot:
    depth: list[dict[str, str]] = field(default_factory=list)
    running: list[dict[str, str]] = field(default_factory=list)
    waiting: list[dict[str, str]] = field(default_factory=list)
    dead: list[dict[str, str]] = field(default_factory=list)
    kinds: list[dict[str, str]] = field(default_factory=list)
    circuits: list[dict[str, str]] = field(default_factory=list)
    inbound: list[dict[str, str]] = field(default_factory=list)
    inbound_has_next: bool = False


# Webhooks arrive by the hundred: the page shows them a page at a time, read that way too.
INBOUND_PAGE_SIZE = 20


def _job_row(job: outbox_views.JobView) -> dict[str, str]:
    return {
        "id": str(job.id),
        "kind": job.kind,
        "status": job.status.value,
        "attempts": f"{job.attempts} of {job.max_attempts}",
        "lease": f"{job.lease_owner or ''} until {when(job.lease_until)}"
        if job.lease_owner
        else "",
        "run_after": when(job.run_after),
        "finished": when(job.finished_at),
        "error": (job.last_error or "")[:300],
    }


def _paused_label(kind: str, paused: outbox_pauses.Pauses) -> str:
    """ "platform" (held for every workspace; only the platform lifts it), "yes" (this
    workspace's own pause, which it may resume) or "no"."""
    if kind in paused.platform:
        return "platform"
    return "yes" if kind in paused.workspace else "no"


def read_snapshot(
    session: Session,
    workspace_id: int,
    *,
    inbound_page: int = 0,
    only: outbox_views.JobFilter = outbox_views.EVERY_JOB,
) -> JobsSnapshot:
    """The page's tables; the queue's, running, waiting and dead jobs filtered by ``only``."""
    w = workspace_id
    # This workspace's pauses and the platform's: never another workspace's.
    paused = outbox_pauses.pauses(session, workspace_id=workspace_id)
    snapshot = JobsSnapshot()
    snapshot.depth = [
        {"kind": d.kind, "status": d.status.value, "count": str(d.count)}
        for d in outbox_views.queue_depth(session, workspace_id=workspace_id, only=only)
    ]
    snapshot.running = [
        _job_row(j) for j in outbox_views.running_jobs(session, workspace_id=w, only=only)
    ]
    snapshot.waiting = [
        _job_row(j) for j in outbox_views.waiting_jobs(session, workspace_id=w, only=only)
    ]
    snapshot.dead = [
        _job_row(j) for j in outbox_views.dead_jobs(session, workspace_id=w, only=only)
    ]
    snapshot.kinds = [
        {
            "kind": name,
            "provider": spec.provider or "database",
            "paused": _paused_label(name, paused),
        }
        for name, spec in sorted(outbox.kinds().items())
        if not name.startswith("test.")
    ]
    snapshot.circuits = [
        {
            "provider": c.provider,
            "state": c.state,
            "failures": f"{c.window_failures} of {c.window_calls} in the window",
            "opened_until": when(c.opened_until),
            "rate": "unlimited" if c.rate_limit is None else f"{c.rate_limit:g}/s",
            "error": (c.last_error or "")[:200],
        }
        # This workspace's accounts only: never another tenant's breaker or last error.
        for c in circuits.states(session, workspace_id=workspace_id)
    ]
    # One more than a page: whether there is a next page, without counting the whole table.
    received = inbox.recent(
        session,
        workspace_id=workspace_id,
        limit=INBOUND_PAGE_SIZE + 1,
        offset=inbound_page * INBOUND_PAGE_SIZE,
    )
    snapshot.inbound_has_next = len(received) > INBOUND_PAGE_SIZE
    snapshot.inbound = [
        {
            "received": when(e.received_at),
            "provider": e.provider,
            "type": e.event_type,
            "status": e.status.value,
            "attempts": str(e.attempts),
            "error": (e.last_error or "")[:200],
        }
        for e in received[:INBOUND_PAGE_SIZE]
    ]
    return snapshot


class JobsState(SessionState):
    depth: list[dict[str, str]] = []
    running: list[dict[str, str]] = []
    waiting: list[dict[str, str]] = []
    dead: list[dict[str, str]] = []
    kinds: list[dict[str, str]] = []
    circuits: list[dict[str, str]] = []
    inbound: list[dict[str, str]] = []
    inbound_page: int = 0
    inbound_has_next: bool = False
    # The Health page's links open the page filtered to a provider (and a kind): ?provider=…
    filter_provider: str = ""
    filter_kind: str = ""
    replay_kind: str = ""
    replay_since: str = ""
    replay_preview: int = -1
    message: str = ""

    @rx.var
    def filter_label(self) -> str:
        if not (self.filter_provider or self.filter_kind):
            return ""
        what = self.filter_kind or "jobs"
        return f"Showing {what} of {self.filter_provider}" if self.filter_provider else what

    @rx.var
    def dead_kinds(self) -> list[str]:
        return sorted({row["kind"] for row in self.dead})

    @rx.event
    async def load(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        query = parse_qs(urlsplit(str(self.router.url)).query)
        self.filter_provider = (query.get("provider") or [""])[0][:40]
        self.filter_kind = (query.get("kind") or [""])[0][:60]
        return await self._reload()

    @rx.event
    async def show_every_job(self) -> EventSpec | None:
        """Drop the filter: every job of the workspace again."""
        self.filter_provider = self.filter_kind = ""
        return rx.redirect("/jobs")

    @rx.var
    def inbound_page_label(self) -> str:
        return f"Page {self.inbound_page + 1}"

    @rx.event
    async def next_inbound(self) -> EventSpec | None:
        if not self.inbound_has_next:
            return None
        self.inbound_page += 1
        return await self._reload()

    @rx.event
    async def prev_inbound(self) -> EventSpec | None:
        if self.inbound_page == 0:
            return None
        self.inbound_page -= 1
        return await self._reload()

    async def _reload(self) -> EventSpec | None:
        """Read the page again (the inbound page as it is now)."""
        page = self.inbound_page
        only = outbox_views.JobFilter(self.filter_provider, self.filter_kind)
        found = await read(
            self, lambda s, a: read_snapshot(s, a.workspace_id, inbound_page=page, only=only)
        )
        if found.signed_out:
            return self._login_redirect()
        for name, value in vars(found.get()).items():
            setattr(self, name, value)
        return None

    async def _change(
        self, label: str, work: Callable[[Session, Actor], object]
    ) -> EventSpec | None:
        """Run a change as the operator; refused changes come back as a message."""
        outcome = await change(self, work)
        if outcome.signed_out:
            return self._login_redirect()
        if outcome.refused is not None:
            self.message = outcome.refused
            failed: EventSpec = rx.toast.error(outcome.refused)
            return failed
        result = outcome.value
        self.message = f"{label}: {result}" if result is not None else label
        if (signed_out := await self._reload()) is not None:
            return signed_out
        toast: EventSpec = rx.toast.success(self.message)
        return toast

    @rx.event
    async def pause(self, kind: str) -> EventSpec | None:
        done = await self._change(
            f"Paused {kind}", lambda s, a: outbox_operators.pause_kind(s, actor=a, kind=kind)
        )
        return done

    @rx.event
    async def resume(self, kind: str) -> EventSpec | None:
        done = await self._change(
            f"Resumed {kind}", lambda s, a: outbox_operators.resume_kind(s, actor=a, kind=kind)
        )
        return done

    @rx.event
    async def retry_now(self, job_id: str) -> EventSpec | None:
        """A waiting job runs now instead of after its backoff (owners and admins)."""
        if not job_id.isdigit():
            return None
        done = await self._change(
            "Retry now", lambda s, a: outbox_operators.retry_now(s, actor=a, job_id=int(job_id))
        )
        return done

    @rx.event
    async def replay_one(self, job_id: str) -> EventSpec | None:
        done = await self._change(
            "Replayed jobs", lambda s, a: outbox_operators.replay(s, actor=a, job_id=int(job_id))
        )
        return done

    def _since(self) -> dt.datetime | None:
        if not self.replay_since:
            return None
        return dt.datetime.fromisoformat(self.replay_since).replace(tzinfo=dt.UTC)

    @rx.event
    def set_replay_kind(self, kind: str) -> None:
        self.replay_kind, self.replay_preview = kind, -1

    @rx.event
    def set_replay_since(self, since: str) -> None:
        self.replay_since, self.replay_preview = since, -1

    @rx.event
    async def preview(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        if not self.replay_kind:
            # Without a kind the count would be of every dead job, which is not what the
            # form offers to replay; the button is disabled too, this is for a stale page.
            self.replay_preview = -1
            choose: EventSpec = rx.toast.info("Choose a kind first.")
            return choose
        kind, since = self.replay_kind, self._since()

        found = await read(
            self,
            lambda s, a: outbox_operators.preview_replay(
                s, workspace_id=a.workspace_id, kind=kind, since=since
            ),
        )
        if found.signed_out:
            return self._login_redirect()
        self.replay_preview = found.get()
        return None

    @rx.event
    async def replay_matching(self) -> EventSpec | None:
        kind, since = self.replay_kind or None, self._since()
        done = await self._change(
            "Replayed jobs",
            lambda s, a: outbox_operators.replay(s, actor=a, kind=kind, since=since),
        )
        self.replay_preview = -1
        return done
