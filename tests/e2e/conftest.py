"""The real console (Reflex, production build) on a seeded SQLite database, driven by headless
Chromium through Playwright. One console per test run: the first build takes a minute or two."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import Engine

from backend.db import make_engine
from tests.conftest import unavailable
from tests.support.pgserver import free_port
from tests.support.processes import env_for, run_cli, running, wait_for_http

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@dataclass(frozen=True)
class Console:
    url: str
    engine: Engine
    sandbox_url: str
    sidecar_url: str
    # Where Reflex pickles the console's states between events (its disk state manager).
    states_dir: Path


def _chromium() -> str | None:
    explicit = os.environ.get("HUB_TEST_CHROMIUM")
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("console")
    db_path: Path = folder / "hub.db"
    states_dir = folder / "states"
    url = f"sqlite:///{db_path}"
    port, sandbox_port, sidecar_port = free_port(), free_port(), free_port()
    # The whole product, as `make run` starts it: the upgrade journey crosses all four.
    env = env_for(
        url,
        HUB_CONSOLE_PORT=str(port),
        REFLEX_USE_NPM="1",
        HUB_PUBLIC_CONSOLE_URL=f"http://127.0.0.1:{port}",
        HUB_SANDBOX_PORT=str(sandbox_port),
        HUB_SANDBOX_STATE_FILE="",
        HUB_SIDECAR_PORT=str(sidecar_port),
        HUB_PUBLIC_SIDECAR_URL=f"http://127.0.0.1:{sidecar_port}",
        HUB_HEARTBEAT_SECONDS="2",
        # This run's own folder, so a test can read every state this console pickled.
        REFLEX_STATES_WORKDIR=str(states_dir),
    )
    run_cli("migrate", env=env)
    run_cli("seed", env=env)
    command = [
        sys.executable,
        "-m",
        "reflex",
        "run",
        "--env",
        "prod",
        "--frontend-port",
        str(port),
        "--backend-port",
        str(port),
        "--backend-host",
        "127.0.0.1",
    ]
    sandbox = [sys.executable, "-m", "backend.sandbox"]
    sidecar = [
        sys.executable,
        "-m",
        "uvicorn",
        "backend.api.app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(sidecar_port),
    ]
    scheduler = [sys.executable, "scheduler.py"]
    with (
        running(sandbox, env=env) as sandbox_output,
        running(sidecar, env=env) as sidecar_output,
        running(scheduler, env=env),
        running(command, env=env) as output,
    ):
        base = f"http://127.0.0.1:{port}"
        wait_for_http(
            f"http://127.0.0.1:{sandbox_port}/_sandbox/healthz", timeout=60, output=sandbox_output
        )
        wait_for_http(f"http://127.0.0.1:{sidecar_port}/readyz", timeout=60, output=sidecar_output)
        # The first production build installs the frontend's packages: allow for it.
        wait_for_http(f"{base}/ping", timeout=900, output=output)
        wait_for_http(f"{base}/", timeout=120, output=output)
        engine = make_engine(url)
        yield Console(
            base,
            engine,
            f"http://127.0.0.1:{sandbox_port}",
            f"http://127.0.0.1:{sidecar_port}",
            states_dir,
        )
        engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = _chromium()
    if executable is None:
        unavailable("no Chromium on this machine (make test installs it when run as root)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def page(
    browser: Browser,
    console: Console,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Page]:
    context = browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        # What the person would have seen when it failed.
        folder = tmp_path_factory.mktemp("e2e-failures")
        shot = folder / f"{request.node.name}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(
            f"\nscreenshot of the failure: {shot}\nURL: {page.url}\n"
            f"text: {page.inner_text('body')[:1500]}"
        )
    context.close()


def log_in(page: Page, email: str, password: str, *, expect_success: bool = True) -> None:
    page.goto("/login")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    if expect_success:
        # The session cookie is set once the shell shows; navigating earlier races it.
        expect(page.get_by_test_id("logout")).to_be_visible()
