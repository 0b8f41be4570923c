"""Running a console event handler as the browser would, without one (for the isolation
matrix, tests/security/test_isolation_matrix.py): every state found by introspection, a fresh
state tree per call with the session cookie and the page's URL set, the handler's own function
run to its end (a coroutine awaited, an async generator drained; a background event's
``async with self`` is a no-op on a plain state), and everything the operator could then see:
every var of every state (the browser's and the server's), and the events sent back (toasts,
redirects, downloads)."""

from __future__ import annotations

import base64
import binascii
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import reflex as rx
from reflex.istate.data import ReflexURL, RouterData, SessionData
from reflex.state import BaseState

import console.console  # noqa: F401 - registers every page's state
from console.state.base import SessionState
from tests.support.own_loop import run_on_own_loop

T = TypeVar("T")

CONSOLE = "http://console.test"
# Reflex's own states (hydration, on_load, client errors, shared state) are the framework's.
FRAMEWORK_MODULES = ("reflex.", "reflex_base.")


def _tree(cls: type[BaseState]) -> Iterator[type[BaseState]]:
    yield cls
    for sub in sorted(cls.get_substates(), key=lambda c: c.get_full_name()):
        yield from _tree(sub)


def console_states() -> list[type[BaseState]]:
    return list(_tree(SessionState))


def handlers() -> dict[str, tuple[type[BaseState], str]]:
    """Every event handler of every console state, as "State.handler" (a handler is listed on
    the class that defines it; ``setvar`` is Reflex's, on every state)."""
    return {
        f"{cls.__name__}.{name}": (cls, name)
        for cls in console_states()
        for name in sorted(cls.event_handlers)
    }


def setvar_reaches_beyond_handlers() -> list[str]:
    """What Reflex's ``setvar(name, value)`` would call that is not a classified handler: it
    calls the state's ``set_<name>``, so it reaches the state's own ``set_*`` handlers and the
    root's ``set_is_hydrated``, and must reach nothing else."""
    return [
        f"{cls.__name__}.{attr}"
        for cls in console_states()
        for attr in dir(cls)
        if attr.startswith("set_")
        and attr not in cls.event_handlers
        and attr not in rx.State.event_handlers
    ]


def states_outside_the_session() -> list[str]:
    """States of ours that do not subclass SessionState (their handlers would not be found)."""
    ours = set(console_states())
    return [
        f"{cls.__module__}.{cls.__name__}"
        for cls in _tree(rx.State)
        if cls not in ours
        and cls is not rx.State
        and not cls.__module__.startswith(FRAMEWORK_MODULES)
    ]


@dataclass
class Called:
    """What one call left: the state it ran on, the events it sent back, what it raised."""

    root: BaseState
    state: Any
    events: list[Any]
    error: BaseException | None

    def visible(self) -> str:
        """Everything the operator's browser or their server-side state holds now."""
        parts = [repr(event) for event in self.events]
        for instance in _instances(self.root):
            parts.append(repr(vars(instance)))
        seen = "\n".join(parts)
        # A download carries its file as a base64 data URL.
        for chunk in re.findall(r"base64,([A-Za-z0-9+/=]+)", seen):
            try:
                seen += "\n" + base64.b64decode(chunk).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                continue
        return seen


def _instances(state: BaseState) -> Iterator[BaseState]:
    yield state
    for sub in state.substates.values():
        yield from _instances(sub)


def _flatten(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [e for v in value for e in _flatten(v)]
    return [value]


async def _drain(result: Any) -> list[Any]:
    if inspect.isasyncgen(result):
        return [e for item in [x async for x in result] for e in _flatten(item)]
    if inspect.iscoroutine(result):
        return _flatten(await result)
    if inspect.isgenerator(result):
        return [e for item in result for e in _flatten(item)]
    return _flatten(result)


def call(
    cls: type[BaseState],
    name: str,
    *,
    token: str,
    path: str,
    args: tuple[Any, ...] = (),
    prepare: Callable[[Any], None] | None = None,
) -> Called:
    """Run ``cls.name(*args)`` on a fresh state tree whose session cookie is ``token`` and whose
    page is ``path``; ``prepare`` sets what earlier events would have left in the state."""
    root = rx.State(_reflex_internal_init=True)  # type: ignore[call-arg]
    state: Any = root.get_substate(cls.get_full_name().split(".")[1:])
    state.token = token
    root.router = RouterData(  # type: ignore[misc]
        session=SessionData(client_token="matrix", client_ip="127.0.0.1", session_id="matrix"),
        url=ReflexURL(CONSOLE + path),
    )
    if prepare is not None:
        prepare(state)
    handler = cls.event_handlers[name]
    events: list[Any] = []
    error: BaseException | None = None
    try:
        events = run_on_own_loop(_drain(handler.fn(state, *args)))
    except Exception as exc:  # a handler that raises is a finding, reported with its cell
        error = exc
    return Called(root, state, events, error)
