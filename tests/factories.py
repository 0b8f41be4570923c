"""Small builders for test data, committed so that code using its own sessions sees it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from backend.accounts import service as accounts
from models import Integration, IntegrationStatus, Operator, Plan, Role, Workspace

PASSWORD = "correct horse battery"
# Hashed once, here, outside any transaction: the builders below run inside the test's (and a
# hash there is what tests/support/tx_guard.py fails a test for).
_HASHES = {PASSWORD: accounts.new_password_hash(PASSWORD)}
POLICY = accounts.LoginPolicy(
    session_ttl=dt.timedelta(hours=12), free_failures=3, max_delay_seconds=300
)


def workspace(session: Session, *, slug: str = "acme", plan: Plan = Plan.PRO) -> Workspace:
    row = Workspace(name=slug.title(), slug=slug, plan=plan)
    session.add(row)
    session.flush()
    return row


def password_hash(password: str) -> str:
    """The hash of ``password``, made the first time it is asked for: ask before opening the
    transaction that stores it."""
    if password not in _HASHES:
        _HASHES[password] = accounts.new_password_hash(password)
    return _HASHES[password]


def member(
    session: Session, ws: Workspace, *, email: str, role: Role, password: str = PASSWORD
) -> Operator:
    operator = accounts.create_operator(
        session, email=email, name=email.split("@")[0], password_hash=password_hash(password)
    )
    accounts.add_member(session, workspace_id=ws.id, operator_id=operator.id, role=role)
    return operator


def two_receivers(session: Session, *, provider: str = "stripe") -> list[tuple[int, int]]:
    """Two workspaces, each with ``provider`` connected: [(workspace id, integration id)],
    committed."""
    made = []
    for slug in ("alpha", "beta"):
        ws = workspace(session, slug=slug)
        row = Integration(
            workspace_id=ws.id,
            provider=provider,
            display_name=provider.title(),
            status=IntegrationStatus.ACTIVE,
        )
        session.add(row)
        session.flush()
        made.append((ws.id, row.id))
    session.commit()
    return made
