"""The sidecar and the scheduler as the Procfile starts them: real processes on a real database."""

from __future__ import annotations

import sys
import time

import httpx
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


def test_sidecar_process_logs_at_the_configured_level(db_url: str) -> None:
    port = free_port()
    secret = "cron-secret-for-this-test-0123456789"
    command = [sys.executable, "-m", "uvicorn", "backend.api.app:app", "--port", str(port)]
    env = env_for(db_url, HUB_LOG_LEVEL="WARNING", HUB_CRON_SECRET=secret)
    with running(command, env=env) as output:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/readyz", timeout=60, output=output)
        assert (
            httpx.post(f"{base}/outbox/run", headers={"X-Cron-Secret": secret}).status_code == 200
        )
        assert (
            httpx.post(f"{base}/outbox/run", headers={"X-Cron-Secret": "wrong"}).status_code == 401
        )
        deadline = time.monotonic() + 10
        while "outbox run refused" not in output() and time.monotonic() < deadline:
            time.sleep(0.1)
        logged = output()
    assert "outbox run refused" in logged  # a warning
    assert "outbox run " not in logged.replace("outbox run refused", "")  # info, filtered out


def test_sidecar_readiness_probes_add_nothing_to_the_log(db_url: str) -> None:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "backend.api.app:app", "--port", str(port)]
    with running(command, env=env_for(db_url, HUB_LOG_LEVEL="INFO")) as output:
        wait_for_http(f"http://127.0.0.1:{port}/readyz", timeout=60, output=output)
        before = output()
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        time.sleep(0.5)
        added = output()[len(before) :]
    # uvicorn's access lines only: alembic reading the revision logs nothing at INFO.
    assert "Context impl" not in added and "non-transactional DDL" not in added, added


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


def test_scheduler_gives_up_on_an_unmigrated_database_only_after_its_wait(tmp_path: object) -> None:
    import subprocess

    from tests.support.processes import ROOT

    url = f"sqlite:///{tmp_path}/empty.db"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "scheduler.py"],
        cwd=ROOT,
        env=env_for(url, HUB_SCHEDULER_WAIT_SECONDS="2"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "make migrate" in done.stderr
    # It said what it waited for, and waited before giving up.
    assert "scheduler.waiting_for_database" in done.stdout + done.stderr
    assert time.monotonic() - started >= 2


def test_scheduler_waits_for_migrations_then_starts(tmp_path: object) -> None:
    """Under honcho one process exiting stops all: a scheduler started before `make migrate`
    must wait (saying why) and start once the database is migrated."""
    from backend.db import make_engine
    from tests.support.migrate import upgrade

    url = f"sqlite:///{tmp_path}/late.db"
    with running(
        [sys.executable, "scheduler.py"], env=env_for(url, HUB_HEARTBEAT_SECONDS="1")
    ) as output:
        deadline = time.monotonic() + 30
        while "waiting_for_database" not in output() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "run `make migrate`" in output(), output()
        engine = make_engine(url)
        upgrade(engine)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.execute(select(SchedulerHeartbeat)).first() is not None:
                    engine.dispose()
                    return
            time.sleep(0.5)
        engine.dispose()
        raise AssertionError(f"no heartbeat after migrating:\n{output()[-3000:]}")


def test_sandbox_process_serves_its_control_page_and_the_stripe_api(tmp_path: object) -> None:
    import httpx

    port = free_port()
    env = env_for(
        f"sqlite:///{tmp_path}/unused.db",
        HUB_SANDBOX_PORT=str(port),
        HUB_SANDBOX_STATE_FILE=f"{tmp_path}/sandbox.json",
    )
    with running([sys.executable, "-m", "backend.sandbox"], env=env) as output:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/_sandbox/healthz", timeout=60, output=output)
        page = httpx.get(base + "/", timeout=10)
        assert page.status_code == 200
        for section in ("Stripe: accounts and API keys", "SendGrid", "Drive", "Slack"):
            assert section.lower() in page.text.lower(), section
        from backend.sandbox.stripe.core import DEMO_SECRET_KEY

        account = httpx.get(
            f"{base}/stripe/v1/account",
            timeout=10,
            headers={"Authorization": f"Bearer {DEMO_SECRET_KEY}"},
        )
        assert account.json()["object"] == "account"
