"""Coroutines run to the end from plain test code, whatever loop is running already."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

T = TypeVar("T")


def run_on_own_loop(work: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(work)`` in a thread of its own, with this thread's context variables: the
    browser tests' Playwright (sync API) keeps an event loop running in the main thread for the
    whole session, and asyncio.run refuses to start inside a running loop."""
    done: dict[str, Any] = {}

    def run() -> None:
        try:
            done["value"] = asyncio.run(work)
        except BaseException as exc:  # handed back to the caller's thread below
            done["error"] = exc

    # In this thread's context: Reflex keeps its registrations in context variables.
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(run,), name="own-loop")
    thread.start()
    thread.join()
    if "error" in done:
        raise done["error"]
    return cast(T, done["value"])
