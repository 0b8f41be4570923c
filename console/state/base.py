"""Who is looking, and the one way a page calls the backend.

Every page state subclasses SessionState, so each page's handlers re-resolve the token on the
server before doing anything: the role shown in the browser is for display, never for deciding.

A handler calls the backend through ``read(state, work)`` or ``change(state, work)``: the token is
resolved to an Actor (whose workspace scopes the call) in the same short session as ``work``,
off the event loop; ``read`` never commits, ``change`` commits when ``work`` returns. What came of
it is an ``Outcome``: the value, a refusal in the service's words (shown where the page shows
refusals: a toast, a field, a callout), or ``signed_out`` (nothing ran: send them to log in). A
service that calls a provider or hashes a password takes the engine instead and commits in
steps, with no transaction open during the call (``change_in_steps``, ``account_change_in_steps``;
docs/security/transactions.md).
These are functions, not methods, because Reflex turns a state's public methods into event
handlers; and they never write to the state, so background events may call them outside
``async with self``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar, cast

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.accounts import service as accounts
from backend.config import ProviderMode, get_settings
from backend.db import get_engine, session_factory, session_scope
from backend.integrations import call_log
from backend.platform.actors import Actor
from backend.platform.errors import NotAuthenticated, ServiceError
from console.state import sealing
from console.state.next_page import login_url
from models import Workspace

# Every pickled state is sealed before Reflex writes it (.states/ or Redis): see sealing.py.
sealing.install()

SESSION_COOKIE = "hub_session"
T = TypeVar("T")
Work = Callable[[Session, Actor], T]
# What a page shows the operator instead of failing: a service's refusal, or a ValueError
# from validation (pydantic's ValidationError is one). Anything else is a bug and propagates.
REFUSALS: tuple[type[Exception], ...] = (ServiceError, ValueError)
# "change": owners and admins; "owner": owners only. Most services check the role themselves;
# this is for a call whose service does not (the refusal reads the same as theirs).
Needs = Literal["change", "owner"]


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What a call from a page came to: it ran (``value``), it was refused (``error``, whose
    words are for the operator), or nobody is signed in (``signed_out``: nothing ran)."""

    value: T | None = None
    error: Exception | None = None
    signed_out: bool = False

    @property
    def refused(self) -> str | None:
        return None if self.error is None else str(self.error)

    @property
    def ok(self) -> bool:
        return not self.signed_out and self.error is None

    def get(self) -> T:
        """The value of a call that ran. A refusal nobody checked for is raised again, as if
        it had not been caught (check ``signed_out`` first)."""
        if self.error is not None:
            raise self.error
        if self.signed_out:
            raise NotAuthenticated()
        return cast(T, self.value)


def _check(actor: Actor, needs: Needs | None, what: str) -> None:
    if needs == "change":
        actor.require_change(what)
    elif needs == "owner":
        actor.require_owner(what)


def _as_operator(token: str, work: Work[T], *, commit: bool, needs: Needs | None, what: str) -> T:
    """Blocking: resolve the token and run ``work`` in one short session."""
    if commit:
        with session_scope() as session:
            actor = accounts.resolve(session, token=token)
            _check(actor, needs, what)
            return work(session, actor)
    # A read: closing the session rolls back whatever it began.
    with session_factory()() as session:
        actor = accounts.resolve(session, token=token)
        _check(actor, needs, what)
        return work(session, actor)


async def _outcome(
    blocking: Callable[[], T], refuse: tuple[type[Exception], ...], *, signed_in: bool = True
) -> Outcome[T]:
    try:
        value: T = await rx.run_in_thread(blocking)
    except NotAuthenticated as exc:
        if signed_in:
            return Outcome(signed_out=True)
        if not isinstance(exc, refuse):
            raise
        return Outcome(error=exc)
    except refuse as exc:
        return Outcome(error=exc)
    return Outcome(value)


async def read(
    state: SessionState,
    work: Work[T],
    *,
    needs: Needs | None = None,
    what: str = "make changes",
    refuse: tuple[type[Exception], ...] = REFUSALS,
) -> Outcome[T]:
    """Run ``work(session, actor)`` as the signed-in operator, in a worker thread and a short
    session that is never committed. ``needs`` checks the role first; ``refuse`` lists what
    comes back as a refusal instead of propagating."""
    token = state.token
    if not token:
        return Outcome(signed_out=True)
    return await _outcome(
        lambda: _as_operator(token, work, commit=False, needs=needs, what=what), refuse
    )


async def change(
    state: SessionState,
    work: Work[T],
    *,
    needs: Needs | None = None,
    what: str = "make changes",
    refuse: tuple[type[Exception], ...] = REFUSALS,
) -> Outcome[T]:
    """``read``, committed: one transaction that a refusal (or any error) rolls back."""
    token = state.token
    if not token:
        return Outcome(signed_out=True)
    return await _outcome(
        lambda: _as_operator(token, work, commit=True, needs=needs, what=what), refuse
    )


async def change_in_steps(
    state: SessionState,
    work: Callable[[Engine, Actor], T],
    *,
    needs: Needs | None = None,
    what: str = "make changes",
    refuse: tuple[type[Exception], ...] = REFUSALS,
) -> Outcome[T]:
    """For a service that takes the Engine, not a Session, because it calls a provider between
    short transactions of its own (reconciliation, connect, Test connection, disconnect, the
    plan upgrade): the token is resolved in a short session of its own, then
    ``work(engine, actor)`` runs in the worker thread and commits as it goes."""
    token = state.token
    if not token:
        return Outcome(signed_out=True)

    def blocking() -> T:
        actor = _as_operator(token, lambda _s, a: a, commit=False, needs=needs, what=what)
        # The provider calls it makes are the workspace's (the Health page counts them).
        with call_log.scope(workspace_id=actor.workspace_id):
            return work(get_engine(), actor)

    return await _outcome(blocking, refuse)


async def account_change(
    work: Callable[[Session], T], *, refuse: tuple[type[Exception], ...] = REFUSALS
) -> Outcome[T]:
    """For the calls that make or end a session (log in, log out, switch workspace): there is no
    actor to resolve yet, or the token is what ``work`` acts on. Committed; a NotAuthenticated
    is a refusal like any other here (never ``signed_out``)."""

    def blocking() -> T:
        with session_scope() as session:
            return work(session)

    return await _outcome(blocking, refuse, signed_in=False)


async def account_change_in_steps(
    work: Callable[[Engine], T], *, refuse: tuple[type[Exception], ...] = REFUSALS
) -> Outcome[T]:
    """``account_change`` for a service that takes the Engine and commits in steps of its own
    (log in: the password is verified between two short transactions)."""
    return await _outcome(lambda: work(get_engine()), refuse, signed_in=False)


def _identity(session: Session, actor: Actor) -> tuple[Actor, str, str, list[dict[str, str]]]:
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
        # Only over HTTPS outside sandbox mode (the sandbox runs on plain http://127.0.0.1).
        secure=get_settings().provider_mode is not ProviderMode.SANDBOX,
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
        """Resolve the session token on the server; refresh what the layout shows (a page's
        load does this; its calls go through ``read``/``change``, which resolve it again)."""
        found = await read(self, _identity, refuse=())
        if found.signed_out:
            self.token = ""
            return None
        actor, name, plan, choices = found.get()
        self.operator_name = actor.name
        self.operator_email = actor.email
        self.workspace_id = str(actor.workspace_id)
        self.workspace_name = name
        self.role = actor.role.value
        self.plan = plan
        self.workspaces = choices
        return actor

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
        done = await account_change(
            lambda s: accounts.switch_workspace(s, token=token, workspace_id=int(workspace_id))
        )
        if isinstance(done.error, NotAuthenticated):
            return self._login_redirect()
        if done.refused is not None:
            toast: EventSpec = rx.toast.error(done.refused)
            return toast
        # Every open panel belongs to the old workspace: start the page again.
        return rx.call_script("window.location.reload()")

    @rx.event
    async def logout(self) -> EventSpec:
        token = self.token
        # Nothing is refused here: whatever goes wrong is a bug and propagates.
        await account_change(lambda s: accounts.logout(s, token=token), refuse=())
        self.reset()  # type: ignore[no-untyped-call]
        self.token = ""
        return rx.redirect("/login")
