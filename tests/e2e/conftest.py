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
from playwright.sync_api import Browser, Page, sync_playwright
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
    db_path: Path = tmp_path_factory.mktemp("console") / "hub.db"
    url = f"sqlite:///{db_path}"
    port = free_port()
    env = env_for(
        url,
        HUB_CONSOLE_PORT=str(port),
        REFLEX_USE_NPM="1",
        HUB_PUBLIC_CONSOLE_URL=f"http://127.0.0.1:{port}",
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
    with running(command, env=env) as output:
        base = f"http://127.0.0.1:{port}"
        # The first production build installs the frontend's packages: allow for it.
        wait_for_http(f"{base}/ping", timeout=900, output=output)
        wait_for_http(f"{base}/", timeout=120, output=output)
        engine = make_engine(url)
        yield Console(base, engine)
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


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    context = browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
