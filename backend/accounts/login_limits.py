"""How many wrong passwords a client may try, per client and per (email, client).

Two counters, both kept for unknown addresses exactly as for known ones, so neither the answers
nor the delays tell which addresses have accounts:

- per client (its IP): one password sprayed across many accounts, or one client guessing at
  many, slows down after ``client_free_failures``. Checked before the password is hashed: it is
  about the client, not the account, so answering it early reveals nothing.
- per (email, client): one client guessing at one account slows down after ``free_failures``.
  Checked after the password is hashed (the same cost either way), and a correct password
  inside the delay is refused too, or the delay would not slow a guesser. A real user on
  another client has a counter of their own: an attacker's trickle cannot lock them out.

A run is forgotten ``forget_after`` its last failure. A success clears the (email, client)
counter but not the client's: logging in to an account of one's own must not reset the budget
for guessing at others. Only digests are stored.

Tested in tests/accounts/test_service.py (login).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from backend.db import conflict_insert
from models import LoginThrottle

UNKNOWN_CLIENT = "unknown"


@dataclass(frozen=True, slots=True)
class Limit:
    free_failures: int
    max_delay_seconds: int
    forget_after: dt.timedelta

    def delay_after(self, failures: int) -> int:
        """Seconds to wait after ``failures`` failures in a row: 0, then doubling up to a cap."""
        if failures < self.free_failures:
            return 0
        return int(min(2 ** (failures - self.free_failures + 1), self.max_delay_seconds))


def client_key(client_ip: str) -> str:
    return _digest(f"client:{client_ip or UNKNOWN_CLIENT}")


def pair_key(email: str, client_ip: str) -> str:
    return _digest(f"pair:{email}|{client_ip or UNKNOWN_CLIENT}")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def find(session: Session, key: str) -> LoginThrottle | None:
    return session.scalar(select(LoginThrottle).where(LoginThrottle.key_digest == key))


def wait_seconds(row: LoginThrottle | None, limit: Limit, now: dt.datetime) -> int:
    """Whole seconds this run still has to wait (0: go ahead)."""
    if row is None or now - row.last_failed_at >= limit.forget_after:
        return 0
    retry_at = row.last_failed_at + dt.timedelta(seconds=limit.delay_after(row.failures))
    if now >= retry_at:
        return 0
    return max(1, int((retry_at - now).total_seconds() + 0.999))


def record_failure(session: Session, key: str, limit: Limit, now: dt.datetime) -> LoginThrottle:
    """Count one more failure for ``key``, in one statement: two first failures arriving at
    once (two workers, PostgreSQL) both land on the one row instead of one of them hitting the
    unique key and losing its count."""
    table = LoginThrottle.__table__
    stale = table.c.last_failed_at <= now - limit.forget_after
    insert = conflict_insert(session, LoginThrottle).values(
        key_digest=key, failures=1, last_failed_at=now
    )
    session.execute(
        insert.on_conflict_do_update(
            index_elements=[table.c.key_digest],
            set_={
                # A run forgotten (its last failure too long ago) starts again at one.
                "failures": case((stale, 1), else_=table.c.failures + 1),
                "last_failed_at": now,
            },
        )
    )
    row = session.scalar(
        select(LoginThrottle)
        .where(LoginThrottle.key_digest == key)
        .execution_options(populate_existing=True)
    )
    assert row is not None  # just written, in this transaction
    return row


def clear(session: Session, row: LoginThrottle | None) -> None:
    if row is not None:
        session.delete(row)
