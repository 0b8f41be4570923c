"""Logging in and out, sessions, workspaces and what a role may change."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from backend.accounts import login_limits
from backend.accounts import service as accounts
from backend.db import session_scope
from backend.platform.errors import (
    InvalidInput,
    NotAuthenticated,
    PermissionDenied,
    TooManyAttempts,
)
from models import AuditLog, LoginThrottle, Membership, OperatorSession, Role, Workspace, utcnow
from tests import factories
from tests.factories import PASSWORD, POLICY


@pytest.fixture
def acme(session: Session) -> Workspace:
    ws = factories.workspace(session)
    factories.member(session, ws, email="Owner@Acme.example", role=Role.OWNER)
    factories.member(session, ws, email="viewer@acme.example", role=Role.VIEWER)
    session.commit()
    return ws


def test_login_opens_a_session_that_resolves_to_the_operator(
    engine: Engine, session: Session, acme: Workspace
) -> None:
    result = accounts.login(engine, email=" owner@ACME.example ", password=PASSWORD, policy=POLICY)
    session.commit()
    actor = accounts.resolve(session, token=result.token)
    assert (actor.workspace_id, actor.role, actor.email) == (
        acme.id,
        Role.OWNER,
        "owner@acme.example",
    )
    stored = session.scalars(select(OperatorSession)).one()
    assert stored.token_hash != result.token  # only a digest is kept


def test_wrong_password_and_unknown_email_get_the_same_clear_message(
    engine: Engine, session: Session, acme: Workspace
) -> None:
    with pytest.raises(InvalidInput) as wrong:
        accounts.login(engine, email="owner@acme.example", password="nope-nope", policy=POLICY)
    with pytest.raises(InvalidInput) as unknown:
        accounts.login(engine, email="nobody@acme.example", password="nope-nope", policy=POLICY)
    assert str(wrong.value) == str(unknown.value) == accounts.WRONG_CREDENTIALS


def test_repeated_failures_are_slowed_down_then_allowed_again(
    engine: Engine, session: Session, acme: Workspace
) -> None:
    now = utcnow()
    for attempt in range(POLICY.free_failures):
        with pytest.raises(InvalidInput):
            accounts.login(
                engine,
                email="owner@acme.example",
                password="bad-guess!",
                policy=POLICY,
                now=now + dt.timedelta(milliseconds=attempt),
            )
    # Even the right password waits now, from this client: a guesser cannot tell when they hit it.
    with pytest.raises(TooManyAttempts) as slowed:
        accounts.login(
            engine,
            email="owner@acme.example",
            password=PASSWORD,
            policy=POLICY,
            now=now + dt.timedelta(milliseconds=10),
        )
    assert slowed.value.retry_after_seconds >= 1
    assert "Wait" in str(slowed.value)
    later = now + dt.timedelta(seconds=POLICY.delay_after(POLICY.free_failures) + 1)
    result = accounts.login(
        engine, email="owner@acme.example", password=PASSWORD, policy=POLICY, now=later
    )
    assert result.token


def test_delay_doubles_and_is_capped() -> None:
    delays = [POLICY.delay_after(n) for n in range(0, 14)]
    assert delays[:3] == [0, 0, 0]
    assert delays[3:6] == [2, 4, 8]
    assert max(delays) == POLICY.max_delay_seconds


def test_sessions_expire(engine: Engine, session: Session, acme: Workspace) -> None:
    now = utcnow()
    result = accounts.login(
        engine, email="owner@acme.example", password=PASSWORD, policy=POLICY, now=now
    )
    session.commit()
    accounts.resolve(
        session, token=result.token, now=now + POLICY.session_ttl - dt.timedelta(seconds=1)
    )
    with pytest.raises(NotAuthenticated):
        accounts.resolve(session, token=result.token, now=now + POLICY.session_ttl)


def test_logout_revokes_the_session(engine: Engine, session: Session, acme: Workspace) -> None:
    result = accounts.login(engine, email="owner@acme.example", password=PASSWORD, policy=POLICY)
    accounts.logout(session, token=result.token)
    session.commit()
    with pytest.raises(NotAuthenticated):
        accounts.resolve(session, token=result.token)


def test_removed_member_loses_access_at_the_next_request(
    engine: Engine, session: Session, acme: Workspace
) -> None:
    result = accounts.login(engine, email="viewer@acme.example", password=PASSWORD, policy=POLICY)
    session.commit()
    session.delete(session.scalars(select(Membership).where(Membership.role == Role.VIEWER)).one())
    session.commit()
    with pytest.raises(NotAuthenticated):
        accounts.resolve(session, token=result.token)


def test_switching_workspace_needs_membership(
    engine: Engine, session: Session, acme: Workspace
) -> None:
    other = factories.workspace(session, slug="other")
    owner = session.scalars(select(Membership).where(Membership.role == Role.OWNER)).one()
    session.commit()
    result = accounts.login(engine, email="owner@acme.example", password=PASSWORD, policy=POLICY)
    with pytest.raises(PermissionDenied):
        accounts.switch_workspace(session, token=result.token, workspace_id=other.id)
    accounts.add_member(
        session, workspace_id=other.id, operator_id=owner.operator_id, role=Role.VIEWER
    )
    actor = accounts.switch_workspace(session, token=result.token, workspace_id=other.id)
    assert (actor.workspace_id, actor.role) == (other.id, Role.VIEWER)
    assert accounts.resolve(session, token=result.token).workspace_id == other.id


def test_viewer_cannot_rename_the_workspace_and_nothing_changes(
    engine: Engine, session: Session, acme: Workspace
) -> None:
    viewer = accounts.login(
        engine, email="viewer@acme.example", password=PASSWORD, policy=POLICY
    ).actor
    with pytest.raises(PermissionDenied, match="viewer"):
        accounts.rename_workspace(session, actor=viewer, name="Hijacked")
    session.rollback()
    assert session.get_one(Workspace, acme.id).name == "Acme"


def test_owner_renames_the_workspace_with_an_audit_entry(
    engine: Engine, session: Session, acme: Workspace
) -> None:
    owner = accounts.login(
        engine, email="owner@acme.example", password=PASSWORD, policy=POLICY
    ).actor
    accounts.rename_workspace(session, actor=owner, name="  Acme Events  ")
    session.commit()
    assert session.get_one(Workspace, acme.id).name == "Acme Events"
    entry = session.scalars(select(AuditLog).where(AuditLog.action == "workspace.rename")).one()
    assert entry.details == {"from": "Acme", "to": "Acme Events"}
    assert entry.actor == f"operator:{owner.operator_id}"


def test_operator_without_workspace_is_told_what_to_do(engine: Engine, session: Session) -> None:
    accounts.create_operator(
        session,
        email="lonely@acme.example",
        name="L",
        password_hash=factories.password_hash(PASSWORD),
    )
    session.commit()
    with pytest.raises(PermissionDenied, match="Ask a workspace owner"):
        accounts.login(engine, email="lonely@acme.example", password=PASSWORD, policy=POLICY)


def test_an_unknown_email_is_hashed_once_and_slowed_like_a_known_one(
    engine: Engine, acme: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answers, the work done and the delays are the same for an address with an account
    and one without: nothing tells them apart."""
    hashed: list[str | None] = []
    real = accounts.verify_password

    def counting(password_hash: str | None, password: str) -> bool:
        hashed.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(accounts, "verify_password", counting)
    now = utcnow()
    answers: dict[str, list[str]] = {}
    for email in ("owner@acme.example", "nobody@acme.example"):
        seen = answers.setdefault(email, [])
        for attempt in range(POLICY.free_failures + 1):
            outcome = accounts.attempt_login(
                engine,
                email=email,
                password="bad-guess!",
                policy=POLICY,
                client_ip=f"10.0.0.{len(answers)}",
                now=now + dt.timedelta(milliseconds=attempt),
            )
            seen.append(type(outcome).__name__ + ":" + str(outcome).split(" Wait")[0])
    assert answers["owner@acme.example"] == answers["nobody@acme.example"]
    assert answers["nobody@acme.example"][-1].startswith("TooManyAttempts")
    # One hash per attempt for both, the unknown one against the dummy hash.
    assert len(hashed) == 2 * (POLICY.free_failures + 1)
    assert hashed.count(None) == POLICY.free_failures + 1


def test_an_attackers_trickle_does_not_lock_the_owner_out(
    engine: Engine, session: Session, acme: Workspace
) -> None:
    now = utcnow()
    for minute in range(30):
        accounts.attempt_login(
            engine,
            email="owner@acme.example",
            password="bad-guess!",
            policy=POLICY,
            client_ip="203.0.113.9",
            now=now + dt.timedelta(minutes=minute),
        )
    result = accounts.login(
        engine,
        email="owner@acme.example",
        password=PASSWORD,
        policy=POLICY,
        client_ip="198.51.100.7",
        now=now + dt.timedelta(minutes=30),
    )
    assert result.token


def test_one_password_sprayed_across_many_accounts_is_stopped_per_client(
    engine: Engine, session: Session, acme: Workspace
) -> None:
    now = utcnow()
    outcomes = [
        accounts.attempt_login(
            engine,
            email=f"person{n}@acme.example",
            password="Summer2026!",
            policy=POLICY,
            client_ip="203.0.113.9",
            now=now + dt.timedelta(milliseconds=n),
        )
        for n in range(POLICY.client_free_failures + 1)
    ]
    assert all(isinstance(o, InvalidInput) for o in outcomes[:-1])
    assert isinstance(outcomes[-1], TooManyAttempts)
    # Before hashing, for any address, from that client only; others are unaffected.
    other = accounts.login(
        engine,
        email="owner@acme.example",
        password=PASSWORD,
        policy=POLICY,
        client_ip="198.51.100.7",
        now=now,
    )
    assert other.token


def test_failures_are_committed_with_the_refusal(engine: Engine) -> None:
    """The console runs a login in a unit of work that a raise would roll back: the refusal is
    returned, so the count it made survives."""
    with session_scope(engine) as session:
        ws = factories.workspace(session)
        factories.member(session, ws, email="owner@acme.example", role=Role.OWNER)
    for _ in range(POLICY.free_failures):
        with session_scope(engine) as session:
            outcome = accounts.attempt_login(
                engine, email="owner@acme.example", password="bad-guess!", policy=POLICY
            )
            assert isinstance(outcome, InvalidInput)
    with session_scope(engine) as session:
        outcome = accounts.attempt_login(
            engine, email="owner@acme.example", password=PASSWORD, policy=POLICY
        )
    assert isinstance(outcome, TooManyAttempts)


def test_two_first_failures_at_once_are_both_counted(pg_engine: Engine) -> None:
    """Two workers refuse the same first guess at the same time (PostgreSQL, read committed):
    neither sees the other's row, both write it; the second must add to the count, not fail on
    the unique key (which would turn a wrong password into a 500 and lose the count)."""
    email, client_ip = "nobody@acme.example", "198.51.100.7"
    now = utcnow()

    def attempt(session: Session) -> object:
        # The attempt's last step, once the hash said "wrong" (its first two hold no lock).
        return accounts.record_failed_login(
            session, email=email, client_ip=client_ip, operator=None, policy=POLICY, now=now
        )

    outcomes: list[object] = []
    with Session(pg_engine) as first, Session(pg_engine) as second:
        assert isinstance(attempt(first), InvalidInput)  # written, not yet committed
        worker = threading.Thread(target=lambda: outcomes.append(_guarded(attempt, second)))
        worker.start()
        # The second worker now waits on the first one's new row (its unique key).
        with pg_engine.connect() as probe:
            while not probe.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            ):
                probe.rollback()
                worker.join(0.05)
                assert worker.is_alive(), f"the second attempt did not wait: {outcomes}"
        first.commit()
        worker.join()
        second.commit()
    assert len(outcomes) == 1 and isinstance(outcomes[0], InvalidInput), outcomes
    with Session(pg_engine) as session:
        counts = {
            key: session.scalar(
                select(LoginThrottle.failures).where(LoginThrottle.key_digest == key)
            )
            for key in (login_limits.client_key(client_ip), login_limits.pair_key(email, client_ip))
        }
    assert set(counts.values()) == {2}, counts


def _guarded(work: Callable[[Session], object], session: Session) -> object:
    try:
        return work(session)
    except Exception as exc:  # reported by the test, not lost in the thread
        return exc
