"""Google access tokens of Drive connections kept alive: the periodic job renews those about to
expire, a refresh token Google refuses turns the integration Error with "Reconnect", an outage
only postpones, and the Drive client jobs use renews an expired token on use."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import backend.sandbox.google
from backend import jobs
from backend.connections import credentials, google_tokens, oauth, rows, views
from backend.connections.jobs import refresh_google_tokens
from backend.platform.actors import Actor
from models import AuditLog, Integration, IntegrationLog, IntegrationStatus, Plan, Role
from tests import factories
from tests.support import oauth_flow
from tests.support.google_oauth import (
    consent,
    drive_accepts,
    query_of,
    revoke_at_google,
    set_token_ttl,
)
from tests.support.hub_env import apply
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox
from tests.support.steps import in_steps

GOOGLE = "google_drive"


@pytest.fixture
def sandbox(
    engine: Engine,
    db_url: str,
    make_sandbox: MakeSandbox,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> RunningSandbox:
    running = make_sandbox(providers=[backend.sandbox.google])
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=running.url)
    return running


def _connected(session: Session, sandbox: RunningSandbox, *, ttl: int, slug: str = "acme") -> Actor:
    """A workspace whose Google Drive was connected through consent, its access token issued
    for ``ttl`` seconds; later tokens last the usual hour."""
    ws = factories.workspace(session, slug=slug, plan=Plan.PRO)
    op = factories.member(session, ws, email=f"owner@{slug}.test", role=Role.OWNER)
    session.commit()
    actor = Actor(operator_id=op.id, workspace_id=ws.id, role=Role.OWNER)
    set_token_ttl(sandbox.url, ttl)
    _consent_and_complete(session, actor)
    set_token_ttl(sandbox.url, 3599)
    return actor


def _consent_and_complete(session: Session, actor: Actor) -> None:
    back = query_of(consent(oauth_flow.authorize(session, actor, "google_drive")))
    assert oauth_flow.complete(session, "google_drive", code=back["code"], state=back["state"]).ok
    session.commit()


def _row(session: Session, actor: Actor) -> Integration:
    session.expire_all()
    row = rows.find(session, workspace_id=actor.workspace_id, provider_slug=GOOGLE)
    assert row is not None
    return row


def test_job_is_declared() -> None:
    declared = {job.id: job for job in jobs.declared()}
    assert declared["google-token-refresh"].seconds <= 300
    assert declared["google-token-refresh"].exclusive


def test_job_renews_a_token_expiring_within_ten_minutes(
    session: Session, sandbox: RunningSandbox, calls_written: Callable[[Engine], int]
) -> None:
    soon = _connected(session, sandbox, ttl=300, slug="soon")
    later = _connected(session, sandbox, ttl=3599, slug="later")
    soon_before = credentials.unseal(_row(session, soon))
    later_before = credentials.unseal(_row(session, later))

    session.commit()  # the scheduler writes through its own connections
    refresh_google_tokens()  # what the scheduler runs

    soon_after = credentials.unseal(_row(session, soon))
    assert soon_after["access_token"] != soon_before["access_token"]
    assert soon_after["refresh_token"] == soon_before["refresh_token"]
    expiry = google_tokens.expiry_of(soon_after)
    assert expiry is not None and expiry > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=55)
    assert drive_accepts(sandbox.url, soon_after["access_token"])
    assert _row(session, soon).status is IntegrationStatus.ACTIVE
    # An hour-long token is left alone until its last ten minutes.
    assert credentials.unseal(_row(session, later)) == later_before
    session.commit()  # the writer takes the database's one write lock on SQLite
    calls_written(session.get_bind().engine)
    logs = session.scalars(
        select(IntegrationLog).where(IntegrationLog.operation == "oauth_refresh")
    )
    assert [(log.workspace_id, log.integration_id, log.outcome) for log in logs] == [
        (soon.workspace_id, _row(session, soon).id, "ok")
    ]


def test_revoked_refresh_token_turns_the_integration_error_with_reconnect(
    session: Session, sandbox: RunningSandbox, engine: Engine
) -> None:
    actor = _connected(session, sandbox, ttl=300)
    stored = credentials.unseal(_row(session, actor))
    revoke_at_google(sandbox.url, stored["refresh_token"])
    session.commit()

    report = google_tokens.refresh_due(engine)

    assert (report.renewed, report.failed, report.postponed) == (0, 1, 0)
    row = _row(session, actor)
    assert row.status is IntegrationStatus.ERROR
    assert row.last_error is not None
    assert "invalid_grant" in row.last_error and "Reconnect" in row.last_error
    # The hub's tile for an Error integration offers "Reconnect".
    tile = {v.slug: v for v in views.view(session, actor.workspace_id)}[GOOGLE]
    assert tile.state == "error" and tile.last_error == row.last_error
    entry = session.scalars(
        select(AuditLog).where(AuditLog.action == "integration.refresh_failed")
    ).one()
    assert entry.workspace_id == actor.workspace_id and entry.actor == "scheduler"
    assert stored["refresh_token"] not in str(entry.details)
    # An Error integration is not retried every tick; reconnecting makes it Active again.
    session.commit()
    assert google_tokens.refresh_due(engine).failed == 0
    _consent_and_complete(session, actor)
    assert _row(session, actor).status is IntegrationStatus.ACTIVE


def test_google_outage_postpones_the_renewal_without_an_error(
    session: Session, sandbox: RunningSandbox, engine: Engine
) -> None:
    actor = _connected(session, sandbox, ttl=300)
    before = credentials.unseal(_row(session, actor))
    sandbox.switch(google={"outage": "errors"})
    session.commit()

    report = google_tokens.refresh_due(engine)

    assert (report.renewed, report.failed, report.postponed) == (0, 0, 1)
    row = _row(session, actor)
    assert row.status is IntegrationStatus.ACTIVE and row.last_error is None
    assert credentials.unseal(row) == before
    sandbox.switch(google={"outage": "none"})
    session.commit()
    assert google_tokens.refresh_due(engine).renewed == 1


def test_disconnect_while_renewing_wins(session: Session, sandbox: RunningSandbox) -> None:
    actor = _connected(session, sandbox, ttl=300)
    due = google_tokens.due(session)
    assert [d.workspace_id for d in due] == [actor.workspace_id]
    in_steps(session, lambda engine: oauth.disconnect(engine, actor=actor, provider_slug=GOOGLE))
    assert not google_tokens.mark_refused(session, due[0], "Google refused the credentials.")
    assert _row(session, actor).status is IntegrationStatus.INACTIVE


def test_drive_client_for_jobs_renews_an_expired_token_on_use(
    session: Session, sandbox: RunningSandbox
) -> None:
    actor = _connected(session, sandbox, ttl=60)  # google-auth renews within ~4 minutes of expiry
    before = credentials.unseal(_row(session, actor))

    drive = google_tokens.drive_for(session, workspace_id=actor.workspace_id)
    session.commit()  # what a job's call_provider does before the call
    drive.probe()
    session.commit()  # the renewal, sealed into the row on the way back

    after = credentials.unseal(_row(session, actor))
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] == before["refresh_token"]
    assert drive_accepts(sandbox.url, after["access_token"])
