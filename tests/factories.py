"""Small builders for test data, committed so that code using its own sessions sees it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from backend.accounts import service as accounts
from models import Integration, IntegrationStatus, Operator, Plan, Role, Workspace

PASSWORD = "correct horse battery"
POLICY = accounts.LoginPolicy(
    session_ttl=dt.timedelta(hours=12), free_failures=3, max_delay_seconds=300
)


def workspace(session: Session, *, slug: str = "acme", plan: Plan = Plan.PRO) -> Workspace:
    row = Workspace(name=slug.title(), slug=slug, plan=plan)
    session.add(row)
    session.flush()
    return row


def member(
    session: Session, ws: Workspace, *, email: str, role: Role, password: str = PASSWORD
) -> Operator:
    operator = accounts.create_operator(
        session, email=email, name=email.split("@")[0], password=password
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
