"""The rule of docs/security/transactions.md, checked over the whole suite: no call to a
provider and no password hash while the calling thread holds an open database transaction (on
SQLite that is the database's write lock; on PostgreSQL, row locks). Registered in
tests/conftest.py: a test in which it happens fails, saying where.

- Open transactions, per thread: SQLAlchemy's ``begin``, ``commit`` and ``rollback`` events on
  the ``Engine`` class, so every engine the suite makes is covered (the product's and the
  tests' own). A connection counts while it says it is in a transaction.
- Provider calls: every adapter request runs inside a deadline block
  (``backend/integrations/deadline.py``), whose start is checked; and, for an adapter that
  would skip the block, every socket connect or send made with code of
  ``backend/integrations/`` on the stack.
- Password hashes: argon2's ``PasswordHasher.hash`` and ``verify``.

Tested in tests/test_tx_guard.py.
"""

from __future__ import annotations

import socket
import sys
import threading
import traceback
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import argon2
import pytest
from sqlalchemy import Connection, Engine, event

from backend.integrations import deadline

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = str(ROOT / "backend" / "integrations") + "/"

# Each connection that began a transaction, and the thread that began it.
_owners: weakref.WeakKeyDictionary[Connection, int] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_found: list[str] = []


def _began(conn: Connection) -> None:
    with _lock:
        _owners[conn] = threading.get_ident()


def _ended(conn: Connection) -> None:
    with _lock:
        _owners.pop(conn, None)


def in_transaction(thread: int | None = None) -> bool:
    """Whether ``thread`` (this one by default) holds an open database transaction."""
    thread = threading.get_ident() if thread is None else thread
    with _lock:
        held = [conn for conn, owner in _owners.items() if owner == thread]
    return any(not conn.closed and conn.in_transaction() for conn in held)


_PRODUCT = tuple(str(ROOT / folder) + "/" for folder in ("backend", "console"))


def _where() -> str:
    """The product's frames of the current stack, innermost first (tests and libraries left
    out)."""
    frames = [
        f"{Path(f.filename).relative_to(ROOT)}:{f.lineno} in {f.name}"
        for f in traceback.extract_stack()
        if f.filename.startswith(_PRODUCT)
    ]
    return " <- ".join(reversed(frames[-8:]))


def check(what: str) -> None:
    """Record a violation if this thread holds an open transaction while doing ``what``."""
    if not _owners or not in_transaction():
        return
    with _lock:
        _found.append(f"{what} inside an open database transaction, at {_where()}")


@contextmanager
def caught() -> Iterator[list[str]]:
    """The violations of a block, kept apart from the test's (for tests of the guard)."""
    global _found
    with _lock:
        outer, _found = _found, []
    mine = _found
    try:
        yield mine
    finally:
        with _lock:
            _found = outer


def _take() -> list[str]:
    with _lock:
        found = list(_found)
        _found.clear()
    return found


# -- the points watched -----------------------------------------------------------------------


def _watch_deadlines() -> None:
    init = deadline.Deadline.__init__

    def checked(
        self: deadline.Deadline, provider: str, seconds: float, parent: Any, *rest: Any
    ) -> None:
        check(f"a call to {provider}")
        init(self, provider, seconds, parent, *rest)

    deadline.Deadline.__init__ = checked  # type: ignore[method-assign]


def _from_an_adapter() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith(ADAPTERS):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _watch_sockets() -> None:
    def wrap(name: str) -> None:
        original: Callable[..., Any] = getattr(socket.socket, name)

        def checked(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
            # Inside a deadline block the call was checked where the block began.
            if _owners and deadline.current() is None and in_transaction() and _from_an_adapter():
                check(f"network I/O from an adapter (socket.{name})")
            return original(self, *args, **kwargs)

        setattr(socket.socket, name, checked)

    for name in ("connect", "connect_ex", "send", "sendall"):
        wrap(name)


def _watch_password_hashing() -> None:
    for name in ("hash", "verify"):
        original: Callable[..., Any] = getattr(argon2.PasswordHasher, name)

        def checked(self: Any, *args: Any, _original: Any = original, _name: str = name) -> Any:
            check(f"a password hash (argon2 {_name})")
            return _original(self, *args)

        setattr(argon2.PasswordHasher, name, checked)


def pytest_configure(config: pytest.Config) -> None:
    event.listen(Engine, "begin", _began)
    event.listen(Engine, "commit", _ended)
    event.listen(Engine, "rollback", _ended)
    _watch_deadlines()
    _watch_sockets()
    _watch_password_hashing()


def _fail_if_found(when: str) -> None:
    found = _take()
    if found:
        pytest.fail(
            f"{len(found)} provider call(s) or password hash(es) {when} while the thread held "
            "an open database transaction (docs/security/transactions.md):\n- "
            + "\n- ".join(dict.fromkeys(found)),
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    _take()  # a previous test's, after its report was made: not this one's
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    result = yield
    _fail_if_found("in the test (or while its fixtures were set up)")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Any:
    result = yield
    _fail_if_found("while the test's fixtures were torn down")
    return result
