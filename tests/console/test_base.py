"""The one way a page calls the backend (console/state/base.py): the token is resolved to the
operator for every call, a read never commits and a change does, a refusal comes back in the
service's words, and nobody signed in means nothing ran."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import cast

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend import config, db
from backend.accounts import service as accounts
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, PermissionDenied
from console.state.base import Outcome, SessionState, change, change_in_steps, read
from models import Role, Workspace
from tests import factories
from tests.support.own_loop import run_on_own_loop


@pytest.fixture
def tokens(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[Role, str]]:
    """A signed-in owner and viewer of one workspace, with the console pointed at the database."""
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    with Session(engine) as session:
        ws = factories.workspace(session)
        for role in (Role.OWNER, Role.VIEWER):
            factories.member(session, ws, email=f"{role.value}@acme.example", role=role)
        session.commit()
    found = {
        role: accounts.login(
            engine,
            email=f"{role.value}@acme.example",
            password=factories.PASSWORD,
            policy=factories.POLICY,
        ).token
        for role in (Role.OWNER, Role.VIEWER)
    }
    yield found
    db.get_engine().dispose()
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()


def _state(token: str) -> SessionState:
    # The helpers read nothing of a page's state but its token.
    return cast(SessionState, types.SimpleNamespace(token=token))


def _rename(name: str) -> Callable[[Session, Actor], int]:
    def work(session: Session, actor: Actor) -> int:
        session.get_one(Workspace, actor.workspace_id).name = name
        return actor.workspace_id

    return work


def _name(engine: Engine) -> str:
    with Session(engine) as session:
        return session.scalars(select(Workspace.name)).one()


def test_a_read_runs_as_the_operator_and_never_commits(
    tokens: dict[Role, str], engine: Engine
) -> None:
    found = run_on_own_loop(read(_state(tokens[Role.OWNER]), _rename("Read only")))

    assert found.ok and not found.signed_out
    assert isinstance(found.get(), int)
    assert _name(engine) == "Acme"


def test_a_change_commits(tokens: dict[Role, str], engine: Engine) -> None:
    done = run_on_own_loop(change(_state(tokens[Role.OWNER]), _rename("Renamed")))

    assert done.ok
    assert _name(engine) == "Renamed"


def test_a_refusal_rolls_back_and_comes_back_in_the_services_words(
    tokens: dict[Role, str], engine: Engine
) -> None:
    def work(session: Session, actor: Actor) -> None:
        session.get_one(Workspace, actor.workspace_id).name = "Half done"
        session.flush()
        raise InvalidInput("That name is taken.")

    done: Outcome[None] = run_on_own_loop(change(_state(tokens[Role.OWNER]), work))

    assert not done.ok and not done.signed_out
    assert done.refused == "That name is taken."
    assert isinstance(done.error, InvalidInput)
    with pytest.raises(InvalidInput):
        done.get()  # a refusal nobody checked for is raised again
    assert _name(engine) == "Acme"


def test_an_unknown_or_missing_token_runs_nothing(tokens: dict[Role, str], engine: Engine) -> None:
    for token in ("", "not-a-session"):
        done = run_on_own_loop(change(_state(token), _rename("Nobody")))
        assert done.signed_out and done.refused is None
    assert _name(engine) == "Acme"


def test_the_role_is_checked_where_asked(tokens: dict[Role, str], engine: Engine) -> None:
    viewer = _state(tokens[Role.VIEWER])

    refused = run_on_own_loop(change(viewer, _rename("Viewer"), needs="change", what="rename it"))
    owner_only = run_on_own_loop(read(viewer, _rename("Viewer"), needs="owner", what="see this"))
    unasked = run_on_own_loop(read(viewer, _rename("Viewer")))

    assert isinstance(refused.error, PermissionDenied)
    assert "you can view but not rename it" in (refused.refused or "")
    assert isinstance(owner_only.error, PermissionDenied)
    assert unasked.ok
    assert _name(engine) == "Acme"


def test_a_change_in_steps_gets_the_engine_and_the_operator(tokens: dict[Role, str]) -> None:
    def work(engine: Engine, actor: Actor) -> tuple[bool, Role]:
        return isinstance(engine, Engine), actor.role

    done = run_on_own_loop(change_in_steps(_state(tokens[Role.VIEWER]), work))

    assert done.get() == (True, Role.VIEWER)
