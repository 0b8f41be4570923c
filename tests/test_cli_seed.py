"""`python -m backend.cli seed` (what `make run` seeds with) and the banner it prints."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from models import Operator, Workspace
from tests.support.processes import env_for, run_cli
from tests.test_config import REAL

LIVE = {"HUB_PROVIDER_MODE": "live", **{f"HUB_{name.upper()}": v for name, v in REAL.items()}}


def _rows(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        workspaces = conn.execute(select(func.count()).select_from(Workspace)).scalar_one()
        operators = conn.execute(select(func.count()).select_from(Operator)).scalar_one()
    return int(workspaces), int(operators)


def test_live_mode_gets_no_demo_logins_and_is_told_why(db_url: str, engine: Engine) -> None:
    said = run_cli("seed", env=env_for(db_url, **LIVE))
    assert "demo data not added" in said and "published password" in said
    assert _rows(engine) == (0, 0)
    banner = run_cli("banner", env=env_for(db_url, **LIVE))
    assert "hub-demo-2026" not in banner and "log in as" not in banner


def test_sandbox_mode_seeds_the_demo_and_prints_its_login(db_url: str, engine: Engine) -> None:
    said = run_cli("seed", env=env_for(db_url, HUB_PROVIDER_MODE="sandbox"))
    assert "demo data: created" in said
    workspaces, operators = _rows(engine)
    assert workspaces >= 2 and operators >= 1
    banner = run_cli("banner", env=env_for(db_url, HUB_PROVIDER_MODE="sandbox"))
    assert "log in as" in banner and "/forms/reel-moments" in banner
