"""Calling a service that takes the Engine and commits in steps of its own (it calls a provider,
or hashes a password, between short transactions) from a test that arranges and checks with
its ``session``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

T = TypeVar("T")


def in_steps(session: Session, work: Callable[[Engine], T]) -> T:
    """``work(engine)``, after committing what the test arranged (the service's transactions
    would otherwise wait behind the test's, and tests/support/tx_guard.py would fail the test
    for the provider call made while it is open); what the test reads afterwards is loaded
    again, with what the service wrote."""
    session.commit()
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    try:
        return work(engine)
    finally:
        session.expire_all()
