"""Operators logging in and out, their sessions, and the workspaces they work in.

A password is hashed or verified with no database transaction open (Argon2 takes 64 MiB and
tens of milliseconds; on SQLite a transaction holds the write lock): ``attempt_login`` takes
the Engine and runs in steps, and a new operator's hash is made before the transaction that
stores it (``new_password_hash``). docs/security/transactions.md.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from backend.accounts import login_limits
from backend.db import session_scope
from backend.platform import audit
from backend.platform.actors import Actor
from backend.platform.errors import (
    InvalidInput,
    NotAuthenticated,
    PermissionDenied,
    ServiceError,
    TooManyAttempts,
)
from backend.security.auth import hash_password, new_session_token, token_digest, verify_password
from models import Membership, Operator, OperatorSession, Plan, Role, Workspace, utcnow

WRONG_CREDENTIALS = "Wrong email or password. Check both and try again."


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """How long a session lasts and how failed logins slow down (backend/accounts/login_limits.py
    says why there are two counters and in which order they are checked)."""

    session_ttl: dt.timedelta
    free_failures: int
    max_delay_seconds: int
    # Higher than ``free_failures``: people behind one office's address share a client.
    client_free_failures: int = 10
    forget_after: dt.timedelta = dt.timedelta(hours=1)

    @property
    def per_account(self) -> login_limits.Limit:
        return login_limits.Limit(self.free_failures, self.max_delay_seconds, self.forget_after)

    @property
    def per_client(self) -> login_limits.Limit:
        return login_limits.Limit(
            self.client_free_failures, self.max_delay_seconds, self.forget_after
        )

    def delay_after(self, failures: int) -> int:
        """Seconds to wait after ``failures`` failures in a row: 0, then doubling up to a cap."""
        return self.per_account.delay_after(failures)


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


def new_password_hash(password: str) -> str:
    """A password checked for length and hashed (Argon2, 64 MiB, tens of milliseconds): call
    it before opening the transaction that stores it, never inside one."""
    if len(password) < 8:
        raise InvalidInput("A password needs at least 8 characters.")
    return hash_password(password)


def create_operator(session: Session, *, email: str, name: str, password_hash: str) -> Operator:
    """A new operator, with a hash from ``new_password_hash``."""
    operator = Operator(email=normalise_email(email), name=name, password_hash=password_hash)
    session.add(operator)
    session.flush()
    return operator


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise InvalidInput(f"'{email}' is not an email address.")
    return email


def login(
    engine: Engine,
    *,
    email: str,
    password: str,
    policy: LoginPolicy,
    client_ip: str = "",
    now: dt.datetime | None = None,
) -> LoginResult:
    """``attempt_login``, raising its refusal (committed already)."""
    outcome = attempt_login(
        engine, email=email, password=password, policy=policy, client_ip=client_ip, now=now
    )
    if isinstance(outcome, ServiceError):
        raise outcome
    return outcome


@dataclass(frozen=True, slots=True)
class _Seen:
    """What a login attempt read before hashing."""

    operator_id: int | None
    password_hash: str | None


def attempt_login(
    engine: Engine,
    *,
    email: str,
    password: str,
    policy: LoginPolicy,
    client_ip: str = "",
    now: dt.datetime | None = None,
) -> LoginResult | ServiceError:
    """Check the password and open a session in the operator's first workspace.

    In three steps, so that the Argon2 hash (64 MiB, tens of milliseconds) runs with no
    transaction open: a short transaction reads the client's counter and the operator's hash;
    the password is verified with none open; a new transaction counts a failure or opens the
    session. A refusal is returned, and what it counted is committed: InvalidInput for wrong
    credentials (one message for a wrong password and an unknown address), TooManyAttempts
    while a run of failures from this client is slowed down. Known and unknown addresses cost
    one password hash each and are counted and slowed alike (login_limits).
    """
    now = now or utcnow()
    try:
        email = normalise_email(email)
    except InvalidInput:
        email = email.strip().lower()  # counted like any unknown address
    with session_scope(engine) as session:
        client = login_limits.find(session, login_limits.client_key(client_ip))
        if wait := login_limits.wait_seconds(client, policy.per_client, now):
            return TooManyAttempts(wait)
        operator = session.scalar(select(Operator).where(Operator.email == email))
        seen = _Seen(operator.id, operator.password_hash) if operator else _Seen(None, None)
    # Exactly one hash, known address or not (an unknown one is checked against a dummy hash).
    right = verify_password(seen.password_hash, password)
    with session_scope(engine) as session:
        return _settle(
            session, seen, right=right, email=email, client_ip=client_ip, policy=policy, now=now
        )


def _settle(
    session: Session,
    seen: _Seen,
    *,
    right: bool,
    email: str,
    client_ip: str,
    policy: LoginPolicy,
    now: dt.datetime,
) -> LoginResult | ServiceError:
    """The attempt's outcome, once the password was verified."""
    pair_key = login_limits.pair_key(email, client_ip)
    pair = login_limits.find(session, pair_key)
    if wait := login_limits.wait_seconds(pair, policy.per_account, now):
        # After the hash, and whatever the password: a guesser learns nothing inside the delay.
        return TooManyAttempts(wait)
    operator = session.get(Operator, seen.operator_id) if seen.operator_id is not None else None
    if operator is not None and operator.password_hash != seen.password_hash:
        # The password changed while this one was checked against the old: not a guess, so
        # not counted, and not a way in either.
        return InvalidInput(WRONG_CREDENTIALS)
    if operator is None or not right:
        return record_failed_login(
            session, email=email, client_ip=client_ip, operator=operator, policy=policy, now=now
        )
    choices = workspaces_of(session, operator_id=operator.id)
    if not choices:
        return PermissionDenied(
            "Your account is not a member of any workspace yet. Ask a workspace owner to add you."
        )
    login_limits.clear(session, pair)
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


def record_failed_login(
    session: Session,
    *,
    email: str,
    client_ip: str,
    operator: Operator | None,
    policy: LoginPolicy,
    now: dt.datetime,
) -> InvalidInput:
    """Count a wrong password (or an unknown address) against the client and the (email,
    client) pair, and against the operator when there is one; the refusal to return."""
    login_limits.record_failure(session, login_limits.client_key(client_ip), policy.per_client, now)
    login_limits.record_failure(
        session, login_limits.pair_key(email, client_ip), policy.per_account, now
    )
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
    return InvalidInput(WRONG_CREDENTIALS)


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
