"""`python -m backend.cli outbox pause KIND | resume KIND | list`: the platform's pause of a job
kind, for every workspace, which no workspace's operators can make or lift."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend import cli
from backend.platform import outbox
from models import JobKindPause, OutboxJob
from tests import factories
from tests.support.hub_env import apply

KIND = "stripe.sync_customer"


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch, hub_env: dict[str, str]) -> None:
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url="http://127.0.0.1:9")


def test_pause_list_and_resume_a_kind_for_every_workspace(
    engine: Engine, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with Session(engine) as session:
        for slug in ("alpha", "beta"):
            workspace = factories.workspace(session, slug=slug)
            outbox.enqueue(
                session, kind=KIND, payload={}, idempotency_key=slug, workspace_id=workspace.id
            )
        session.commit()

    cli.main(["outbox", "list"])
    assert "no job kind is paused by the platform" in capsys.readouterr().out
    cli.main(["outbox", "pause", KIND])
    assert f"{KIND} paused for every workspace" in capsys.readouterr().out
    cli.main(["outbox", "pause", KIND])
    assert "already paused" in capsys.readouterr().out
    cli.main(["outbox", "list"])
    assert f"{KIND}: paused " in capsys.readouterr().out

    with Session(engine) as session:
        assert session.scalars(select(JobKindPause.workspace_id)).all() == [None]
        assert outbox.claim(session, worker="w") == []
        session.rollback()

    cli.main(["outbox", "resume", KIND])
    assert f"{KIND} resumed for every workspace" in capsys.readouterr().out
    with Session(engine) as session:
        claimed = {job.idempotency_key for job in outbox.claim(session, worker="w")}
        assert claimed == {"alpha", "beta"}
        assert session.scalar(select(OutboxJob.id).limit(1)) is not None


def test_refusals_name_the_problem(
    engine: Engine, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["outbox", "resume", KIND])
    assert exited.value.code == 1
    assert "is not paused by the platform" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        cli.main(["outbox", "pause", "no.such_kind"])
    assert exited.value.code == 2
    assert "There is no job kind 'no.such_kind'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        cli.main(["outbox", "pause"])
    assert exited.value.code == 2
    assert KIND in capsys.readouterr().err  # the usage lists the kinds
