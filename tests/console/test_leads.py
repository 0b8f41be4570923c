"""The Leads page's state pages by keyset: Next and Previous walk the list without a row twice
or missing, a filter starts again at page 1; the lead page's poll reads the page again only
when its mark moved."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import reflex as rx
from reflex.istate.data import ReflexURL, RouterData, SessionData
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.accounts import service as accounts
from backend.leads import views
from console.state.leads import LeadsState, LeadState
from models import EmailMessage, Lead, Role
from tests import factories
from tests.support.hub_env import apply
from tests.support.own_loop import run_on_own_loop

T0 = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


@pytest.fixture
def token(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, hub_env: dict[str, str]
) -> str:
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url="http://127.0.0.1:9")
    with Session(engine) as session:
        ws = factories.workspace(session)
        factories.member(session, ws, email="owner@studio.example", role=Role.OWNER)
        for n in range(60):
            session.add(
                Lead(
                    workspace_id=ws.id,
                    name=f"Lead {n:02d}",
                    email=f"lead{n}@example.com",
                    status="engaged" if n % 3 == 0 else "new",
                    created_at=T0 + dt.timedelta(minutes=n),
                )
            )
        session.commit()
    return accounts.login(
        engine, email="owner@studio.example", password=factories.PASSWORD, policy=factories.POLICY
    ).token


def _state(cls: type[Any], token: str, path: str) -> Any:
    root = rx.State(_reflex_internal_init=True)  # type: ignore[call-arg]
    state = root.get_substate(cls.get_full_name().split(".")[1:])
    state.token = token
    root.router = RouterData(  # type: ignore[misc]
        session=SessionData(client_token="t", client_ip="127.0.0.1", session_id="t"),
        url=ReflexURL("http://console.test" + path),
    )
    return state


def _run(state: Any, name: str, *args: Any) -> Any:
    return run_on_own_loop(type(state).event_handlers[name].fn(state, *args))


def _names(state: Any) -> list[str]:
    return [row["name"] for row in state.rows]


def test_next_and_previous_walk_the_list_by_keyset(token: str) -> None:
    state = _state(LeadsState, token, "/leads")
    _run(state, "load")
    seen = [_names(state)]
    while state.has_next:
        _run(state, "next_page")
        seen.append(_names(state))
    assert [len(page) for page in seen] == [25, 25, 10]
    assert state.page == 3
    flat = [name for page in seen for name in page]
    assert flat == [f"Lead {n:02d}" for n in reversed(range(60))]
    _run(state, "previous_page")
    assert (state.page, _names(state)) == (2, seen[1])
    _run(state, "previous_page")
    assert (state.page, _names(state)) == (1, seen[0])
    _run(state, "previous_page")  # nothing before the first page
    assert state.page == 1
    # A filter starts at page 1 again.
    _run(state, "next_page")
    _run(state, "set_status_filter", "engaged")
    assert state.page == 1 and len(state.rows) == 20 and not state.has_next
    assert {row["status_label"] for row in state.rows} == {"Engaged"}
    _run(state, "set_status_filter", "not-a-status")  # anything else is every status
    assert state.status_filter == "all" and len(state.rows) == 25


def test_the_lead_page_reads_again_only_when_its_mark_moves(
    token: str, engine: Engine, session: Session
) -> None:
    lead = session.query(Lead).filter(Lead.name == "Lead 07").one()
    message = EmailMessage(
        workspace_id=lead.workspace_id,
        purpose="proposal_sent",
        template="proposal_sent",
        to_email=lead.email,
        subject_type="lead",
        subject_id=lead.id,
        status="delivered",
    )
    session.add(message)
    session.commit()
    state = _state(LeadState, token, f"/leads/{lead.id}")
    _run(state, "load")
    assert state.lead["name"] == "Lead 07"
    assert [e["status_label"] for e in state.emails] == ["Delivered"]
    mark = state._mark
    state.emails = []  # what the page shows; a poll that finds nothing new leaves it
    _run(state, "poll")
    assert state.emails == [] and state._mark == mark
    message.status, message.open_count = "opened", 1
    session.commit()
    _run(state, "poll")
    assert [e["status_label"] for e in state.emails] == ["Opened"]
    assert state._mark != mark
    # A lead that is not there (or not the workspace's) is not found, in the same words.
    missing = _state(LeadState, token, f"/leads/{lead.id + 1000}")
    _run(missing, "load")
    assert missing.missing == views.NOT_FOUND and not missing.loaded
