"""Delivering notices through the real Slack and SendGrid SDKs against the sandbox: Slack posts
in the alert channel, the e-mail pipeline mails owners and admins (not viewers) an
``alert_notification``, and three scheduler
workers raising and draining at once deliver exactly one message."""

from __future__ import annotations

import threading

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import backend.sandbox.sendgrid as sendgrid_emulator
import backend.sandbox.slack as slack_emulator
from backend.connections import credentials
from backend.jobs.runner import Runner
from backend.platform import incidents
from models import AlertEvent, AlertPriority, Integration, IntegrationStatus, Role
from tests import factories
from tests.support.hub_env import apply
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox


def _connect(
    session: Session, ws: int, provider: str, secrets: dict[str, str], **settings: str
) -> None:
    row = Integration(
        workspace_id=ws,
        provider=provider,
        display_name=provider.title(),
        status=IntegrationStatus.ACTIVE,
        settings=settings,
    )
    session.add(row)
    session.flush()
    credentials.seal(row, secrets)


def _world(engine: Engine, sandbox: RunningSandbox, *, email: bool) -> int:
    bot = httpx.post(f"{sandbox.url}/slack/_sandbox/tokens", json={"team": "Lakeside"}, timeout=10)
    with Session(engine) as session:
        ws = factories.workspace(session)
        factories.member(session, ws, email="owner@lakeside.example", role=Role.OWNER)
        factories.member(session, ws, email="admin@lakeside.example", role=Role.ADMIN)
        factories.member(session, ws, email="viewer@lakeside.example", role=Role.VIEWER)
        _connect(session, ws.id, "slack", {"bot_token": bot.json()["token"]})
        if email:
            key = httpx.post(f"{sandbox.url}/sendgrid/_sandbox/api_keys", timeout=10)
            _connect(
                session,
                ws.id,
                "sendgrid",
                {"api_key": key.json()["api_key"]},
                from_email="alerts@lakeside.example",
            )
        session.commit()
        return ws.id


def _raise(engine: Engine, ws: int) -> None:
    with Session(engine) as session:
        incidents.raise_incident(
            session,
            workspace_id=ws,
            rule="breaker.open",
            entity_type="provider",
            entity_id="stripe",
            message="Stripe's breaker is open: calls are failing.",
            priority=AlertPriority.CRITICAL,
            occurrence=False,
        )
        session.commit()


def test_a_new_incident_is_posted_to_slack_and_mailed_to_owners_and_admins(
    make_sandbox: MakeSandbox,
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> None:
    sandbox = make_sandbox(providers=[slack_emulator, sendgrid_emulator])
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    ws = _world(engine, sandbox, email=True)
    _raise(engine, ws)
    report = Runner(engine, "test-worker", batch=10).run_once()
    assert report.done == 2, report.errors
    # The e-mail notice queued one alert_notification per owner and admin: one request mails
    # both (the other's send job, claimed with it, finds its message sent).
    report = Runner(engine, "test-worker", batch=10).run_once()
    assert report.done == 2, report.errors
    (message,) = sandbox.ctx.store.read("slack")["messages"]
    assert message["channel"] == "#alerts"
    assert message["text"].startswith("New alert [critical] breaker.open: Stripe's breaker")
    mailed = sandbox.ctx.store.read("sendgrid")["messages"].values()
    assert sorted(m["to"]["email"] for m in mailed) == [
        "admin@lakeside.example",
        "owner@lakeside.example",
    ]
    for mail in mailed:
        assert mail["subject"].startswith("Alert: New alert [critical] breaker.open")
        assert mail["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "/health" in mail["text"]
    with Session(engine) as session:
        delivered = session.scalars(
            select(AlertEvent.detail).where(AlertEvent.what == "delivered")
        ).all()
        assert sorted(delivered) == ["notice 1 by Slack", "notice 1 by e-mail"]


def test_three_schedulers_raising_and_draining_at_once_post_exactly_one_message(
    make_sandbox: MakeSandbox,
    pg_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> None:
    sandbox = make_sandbox(providers=[slack_emulator])
    db_url = pg_engine.url.render_as_string(hide_password=False)
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)
    ws = _world(pg_engine, sandbox, email=False)
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def scheduler(n: int) -> None:
        try:
            start.wait()
            _raise(pg_engine, ws)  # each process's evaluation sees the breaker open
            start.wait()
            Runner(pg_engine, f"scheduler-{n}", batch=10).run_once()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=scheduler, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(sandbox.ctx.store.read("slack")["messages"]) == 1
