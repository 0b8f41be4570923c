"""Operators logging in and out, their sessions, and the workspaces they work in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.platform import audit
from backend.platform.actors import Actor
from backend.platform.errors import (
    InvalidInput,
    NotAuthenticated,
    PermissionDenied,
    TooManyAttempts,
)
from backend.security.auth import hash_password, new_session_token, token_digest, verify_password
from models import Membership, Operator, OperatorSession, Plan, Role, Workspace, utcnow

WRONG_CREDENTIALS = "Wrong email or password. Check both and try again."


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    session_ttl: dt.timedelta
    free_failures: int
    max_delay_seconds: int

    def delay_after(self, failures: int) -> int:
        """Seconds to wait after ``failures`` failures in a row: 0, then doubling up to a cap."""
        if failures < self.free_failures:
            return 0
        return int(min(2 ** (failures - self.free_failures + 1), self.max_delay_seconds))


@dataclass(frozen=True, slots=True)
class WorkspaceChoice:
    workspace_id: int
    name: str
    role: Role
    plan: Plan


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    actor: Actor


def create_operator(session: Session, *, email: str, name: str, password: str) -> Operator:
    email = normalise_email(email)
    if len(password) < 8:
        raise InvalidInput("A password needs at least 8 characters.")
    operator = Operator(email=email, name=name, password_hash=hash_password(password))
    session.add(operator)
    session.flush()
    return operator


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise InvalidInput(f"'{email}' is not an email address.")
    return email


def login(
    session: Session,
    *,
    email: str,
    password: str,
    policy: LoginPolicy,
    now: dt.datetime | None = None,
) -> LoginResult:
    """Check the password and open a session in the operator's first workspace.

    Raises InvalidInput for wrong credentials (one message for both, so it does not reveal which
    addresses have accounts) and TooManyAttempts while a run of failures is being slowed down.
    """
    now = now or utcnow()
    try:
        email = normalise_email(email)
    except InvalidInput:
        raise InvalidInput(WRONG_CREDENTIALS) from None
    operator = session.scalar(select(Operator).where(Operator.email == email).with_for_update())
    if operator is not None and operator.last_failed_login_at is not None:
        wait = policy.delay_after(operator.failed_logins)
        retry_at = operator.last_failed_login_at + dt.timedelta(seconds=wait)
        if now < retry_at:
            raise TooManyAttempts(max(1, int((retry_at - now).total_seconds() + 0.999)))
    if operator is None or not verify_password(
        operator.password_hash if operator else None, password
    ):
        if operator is not None:
            operator.failed_logins += 1
            operator.last_failed_login_at = now
            audit.record(
                session,
                actor=f"operator:{operator.id}",
                action="login.failed",
                target=f"operator:{operator.id}",
                details={"failures_in_a_row": operator.failed_logins},
            )
        raise InvalidInput(WRONG_CREDENTIALS)

    choices = workspaces_of(session, operator_id=operator.id)
    if not choices:
        raise PermissionDenied(
            "Your account is not a member of any workspace yet. Ask a workspace owner to add you."
        )
    operator.failed_logins = 0
    operator.last_failed_login_at = None
    operator.last_login_at = now
    token = new_session_token()
    first = choices[0]
    session.add(
        OperatorSession(
            token_hash=token_digest(token),
            operator_id=operator.id,
            workspace_id=first.workspace_id,
            expires_at=now + policy.session_ttl,
            last_seen_at=now,
        )
    )
    actor = Actor(operator.id, first.workspace_id, first.role, operator.email, operator.name)
    audit.record(session, actor=actor, action="login", target=f"operator:{operator.id}")
    return LoginResult(token=token, actor=actor)


def _live_session(session: Session, token: str, now: dt.datetime) -> OperatorSession | None:
    if not token:
        return None
    row = session.scalar(
        select(OperatorSession).where(OperatorSession.token_hash == token_digest(token))
    )
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    return row


def resolve(session: Session, *, token: str, now: dt.datetime | None = None) -> Actor:
    """The actor behind a session token, or NotAuthenticated. Checks membership every time, so
    removing someone from a workspace takes effect at their next click."""
    now = now or utcnow()
    row = _live_session(session, token, now)
    if row is None:
        raise NotAuthenticated()
    found = session.execute(
        select(Operator, Membership.role)
        .join(Membership, Membership.operator_id == Operator.id)
        .where(Operator.id == row.operator_id, Membership.workspace_id == row.workspace_id)
    ).first()
    if found is None:
        raise NotAuthenticated("You are no longer a member of that workspace. Log in again.")
    operator, role = found
    return Actor(operator.id, row.workspace_id, role, operator.email, operator.name)


def logout(session: Session, *, token: str, now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    row = _live_session(session, token, now)
    if row is not None:
        row.revoked_at = now
        audit.record(
            session,
            actor=f"operator:{row.operator_id}",
            action="logout",
            target=f"operator:{row.operator_id}",
            workspace_id=row.workspace_id,
        )


def workspaces_of(session: Session, *, operator_id: int) -> list[WorkspaceChoice]:
    rows = session.execute(
        select(Workspace.id, Workspace.name, Membership.role, Workspace.plan)
        .join(Membership, Membership.workspace_id == Workspace.id)
        .where(Membership.operator_id == operator_id)
        .order_by(Workspace.name, Workspace.id)
    ).all()
    return [WorkspaceChoice(wid, name, role, plan) for wid, name, role, plan in rows]


def switch_workspace(
    session: Session, *, token: str, workspace_id: int, now: dt.datetime | None = None
) -> Actor:
    now = now or utcnow()
    row = _live_session(session, token, now)
    if row is None:
        raise NotAuthenticated()
    member = session.scalar(
        select(Membership).where(
            Membership.operator_id == row.operator_id, Membership.workspace_id == workspace_id
        )
    )
    if member is None:
        raise PermissionDenied("You are not a member of that workspace.")
    row.workspace_id = workspace_id
    return resolve(session, token=token, now=now)


def add_member(session: Session, *, workspace_id: int, operator_id: int, role: Role) -> Membership:
    membership = Membership(workspace_id=workspace_id, operator_id=operator_id, role=role)
    session.add(membership)
    session.flush()
    return membership


def rename_workspace(session: Session, *, actor: Actor, name: str) -> Workspace:
    actor.require_change("rename the workspace")
    name = name.strip()
    if not 2 <= len(name) <= 120:
        raise InvalidInput("A workspace name needs 2 to 120 characters.")
    workspace = session.get_one(Workspace, actor.workspace_id)
    old = workspace.name
    workspace.name = name
    audit.record(
        session,
        actor=actor,
        action="workspace.rename",
        target=f"workspace:{workspace.id}",
        details={"from": old, "to": name},
    )
    return workspace


def purge_expired_sessions(session: Session, *, now: dt.datetime | None = None) -> int:
    """Sessions past expiry are useless; keep the table small. Returns how many were marked."""
    now = now or utcnow()
    result = session.execute(
        update(OperatorSession)
        .where(OperatorSession.expires_at <= now, OperatorSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)
