"""Who is looking: the session token, the operator, the workspace they work in and their role.

Every page state subclasses SessionState, so each page's handlers re-resolve the token on the
server before doing anything: the role shown in the browser is for display, never for deciding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.orm import Session

from backend.accounts import service as accounts
from backend.config import get_settings
from backend.db import session_scope
from backend.platform.actors import Actor
from backend.platform.errors import NotAuthenticated, ServiceError
from console.state.next_page import login_url
from models import Workspace

SESSION_COOKIE = "hub_session"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What a change asked for from a page came to. ``actor`` is None when nobody is signed
    in (nothing ran); ``refused`` holds the service's reason, in words for the operator."""

    actor: Actor | None
    value: T | None = None
    refused: str | None = None


def _identity(token: str) -> tuple[Actor, str, str, list[dict[str, str]]]:
    with session_scope() as session:
        actor = accounts.resolve(session, token=token)
        workspace = session.get_one(Workspace, actor.workspace_id)
        choices = [
            {"id": str(c.workspace_id), "label": f"{c.name} ({c.role.value})"}
            for c in accounts.workspaces_of(session, operator_id=actor.operator_id)
        ]
        return actor, workspace.name, workspace.plan.value, choices


class SessionState(rx.State):
    # A cookie rather than local storage so that it is sent on the first request and expires.
    token: str = rx.Cookie(
        "",
        name=SESSION_COOKIE,
        same_site="strict",
        max_age=get_settings().session_ttl_hours * 3600,
    )
    operator_name: str = ""
    operator_email: str = ""
    workspace_id: str = ""
    workspace_name: str = ""
    role: str = ""
    plan: str = ""
    workspaces: list[dict[str, str]] = []
    provider_mode: str = get_settings().provider_mode.value
    sandbox_url: str = get_settings().sandbox_url

    @rx.var
    def can_change(self) -> bool:
        return self.role in ("owner", "admin")

    @rx.var
    def is_sandbox(self) -> bool:
        return self.provider_mode == "sandbox"

    async def _authenticate(self) -> Actor | None:
        """Resolve the session token on the server; refresh what the layout shows."""
        token = self.token
        if not token:
            return None
        try:
            identity: tuple[Actor, str, str, list[dict[str, str]]] = await rx.run_in_thread(
                lambda: _identity(token)
            )
        except NotAuthenticated:
            self.token = ""
            return None
        actor, name, plan, choices = identity
        self.operator_name = actor.name
        self.operator_email = actor.email
        self.workspace_id = str(actor.workspace_id)
        self.workspace_name = name
        self.role = actor.role.value
        self.plan = plan
        self.workspaces = choices
        return actor

    async def _apply(self, change: Callable[[Session, Actor], T]) -> Outcome[T]:
        """Run a service change as the signed-in operator: off the event loop, in one
        transaction. A refusal (ServiceError, or a ValueError from validation) rolls it back
        and comes back as ``refused``; anything else is a bug and propagates."""
        actor = await self._authenticate()
        if actor is None:
            return Outcome(None)

        def work() -> T:
            with session_scope() as session:
                return change(session, actor)

        try:
            value: T = await rx.run_in_thread(work)
        except (ServiceError, ValueError) as exc:
            return Outcome(actor, refused=str(exc))
        return Outcome(actor, value)

    def _login_redirect(self) -> EventSpec:
        """To the login page, which brings the operator back to this page afterwards."""
        return rx.redirect(login_url(str(self.router.url)))

    @rx.event
    async def require_login(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        return None

    @rx.event
    async def switch_workspace(self, workspace_id: str) -> EventSpec | None:
        token = self.token

        def work() -> None:
            with session_scope() as session:
                accounts.switch_workspace(session, token=token, workspace_id=int(workspace_id))

        try:
            await rx.run_in_thread(work)
        except NotAuthenticated:
            return self._login_redirect()
        except ServiceError as exc:
            toast: EventSpec = rx.toast.error(str(exc))
            return toast
        # Every open panel belongs to the old workspace: start the page again.
        return rx.call_script("window.location.reload()")

    @rx.event
    async def logout(self) -> EventSpec:
        token = self.token

        def work() -> None:
            with session_scope() as session:
                accounts.logout(session, token=token)

        await rx.run_in_thread(work)
        self.reset()  # type: ignore[no-untyped-call]
        self.token = ""
        return rx.redirect("/login")
