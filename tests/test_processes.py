"""The sidecar and the scheduler as the Procfile starts them: real processes on a real database."""

from __future__ import annotations

import sys
import time

from sqlalchemy import Engine, select

from models import SchedulerHeartbeat
from tests.support.pgserver import free_port
from tests.support.processes import env_for, running, wait_for_http


def test_sidecar_process_is_ready_on_a_migrated_database(db_url: str) -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "backend.api.app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with running(command, env=env_for(db_url)) as output:
        wait_for_http(f"http://127.0.0.1:{port}/readyz", timeout=60, output=output)


def test_scheduler_process_records_heartbeats(db_url: str, engine: Engine) -> None:
    with running(
        [sys.executable, "scheduler.py"], env=env_for(db_url, HUB_HEARTBEAT_SECONDS="1")
    ) as output:
        deadline = time.monotonic() + 60
        ticks: list[object] = []
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                ticks = [row.last_tick_at for row in conn.execute(select(SchedulerHeartbeat))]
            if ticks:
                first = ticks[0]
                time.sleep(2.5)
                with engine.connect() as conn:
                    again = conn.execute(select(SchedulerHeartbeat.last_tick_at)).scalar_one()
                assert again > first, output()
                return
            time.sleep(0.5)
        raise AssertionError(f"no heartbeat within 60 s:\n{output()[-3000:]}")


def test_scheduler_refuses_to_start_on_an_unmigrated_database(tmp_path: object) -> None:
    import subprocess

    from tests.support.processes import ROOT

    url = f"sqlite:///{tmp_path}/empty.db"
    done = subprocess.run(
        [sys.executable, "scheduler.py"],
        cwd=ROOT,
        env=env_for(url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "make migrate" in done.stderr
