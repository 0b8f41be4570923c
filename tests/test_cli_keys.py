"""`python -m backend.cli keys new | rotate | check`, and the start-up refusal of the sidecar
and the scheduler when stored credentials use a key the ring lacks."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend import cli
from backend.api.app import CredentialKeysMissing, create_app
from backend.connections import credentials
from backend.security.crypto import KeyRing, generate_key_entry
from models import Integration, IntegrationStatus, Plan
from tests import factories
from tests.support.hub_env import apply

K1 = generate_key_entry("k1")
K2 = generate_key_entry("k2")


def _env(monkeypatch: pytest.MonkeyPatch, hub_env: dict[str, str], db_url: str, keys: str) -> None:
    hub_env["HUB_CREDENTIAL_KEYS"] = keys
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url="http://127.0.0.1:9")


def _seed(engine: Engine, keys: str, count: int = 2) -> None:
    ring = KeyRing.parse(keys)
    with Session(engine) as session:
        ws = factories.workspace(session, plan=Plan.BUSINESS)
        for i in range(count):
            row = Integration(
                workspace_id=ws.id,
                provider=f"p{i}",
                display_name="P",
                status=IntegrationStatus.ACTIVE,
            )
            session.add(row)
            session.flush()
            credentials.seal(row, {"secret_key": f"s{i}"}, ring)
        session.commit()


def test_keys_new_prints_a_usable_entry(
    monkeypatch: pytest.MonkeyPatch, hub_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, hub_env, "sqlite://", K1)
    cli.main(["keys", "new"])
    entry = capsys.readouterr().out.strip()
    assert entry.startswith("k2:")
    assert KeyRing.parse(f"{entry},{K1}").current_id == "k2"


def test_keys_rotate_then_check_after_removing_the_old_key(
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _seed(engine, K1)
    _env(monkeypatch, hub_env, db_url, f"{K2},{K1}")
    cli.main(["keys", "rotate"])
    assert "re-encrypted 2, already current 0, unreadable 0" in capsys.readouterr().out
    cli.main(["keys", "rotate"])
    assert "re-encrypted 0, already current 2, unreadable 0" in capsys.readouterr().out
    _env(monkeypatch, hub_env, db_url, K2)
    cli.main(["keys", "check"])
    assert "key ring ok" in capsys.readouterr().out


def test_keys_check_names_the_missing_key(
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _seed(engine, K1)
    _env(monkeypatch, hub_env, db_url, K2)
    with pytest.raises(SystemExit) as exited:
        cli.main(["keys", "check"])
    assert exited.value.code == 1
    assert "Stored credentials use key id 'k1'" in capsys.readouterr().err


def test_sidecar_refuses_to_start_with_a_missing_key(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, hub_env: dict[str, str]
) -> None:
    _seed(engine, K1)
    _env(monkeypatch, hub_env, db_url, K2)
    with pytest.raises(CredentialKeysMissing, match="'k1'"), TestClient(create_app()):
        pass
    _env(monkeypatch, hub_env, db_url, f"{K2},{K1}")
    with TestClient(create_app()) as client:
        assert client.get("/healthz").status_code == 200


def test_sidecar_starts_on_an_unmigrated_database(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, hub_env: dict[str, str]
) -> None:
    _env(monkeypatch, hub_env, f"sqlite:///{tmp_path}/empty.db", K1)
    with TestClient(create_app()) as client:
        assert client.get("/readyz").status_code == 503


def test_scheduler_refuses_to_start_with_a_missing_key(
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    import scheduler

    _seed(engine, K1)
    _env(monkeypatch, hub_env, db_url, K2)
    with pytest.raises(SystemExit) as exited:
        scheduler.main()
    assert exited.value.code == 1
    assert "key id 'k1'" in capsys.readouterr().err
