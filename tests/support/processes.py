"""Start the product's own processes for a test, with their output kept for the failure message."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def env_for(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update({"HUB_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1", **extra})
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    return env


def run_cli(*args: str, env: Mapping[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "backend.cli", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"backend.cli {args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@contextmanager
def running(command: list[str], *, env: Mapping[str, str]) -> Iterator[Callable[[], str]]:
    """Run a process for the block; yields a function returning its output so far."""
    log = tempfile.NamedTemporaryFile(prefix="hub-proc-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def output() -> str:
        return Path(log.name).read_text(errors="replace")

    output.process = process  # type: ignore[attr-defined]  # lets waiters notice a death

    try:
        yield output
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(timeout=10)
        log.close()
        os.unlink(log.name)


def wait_for_http(
    url: str, *, timeout: float, output: Callable[[], str], status: int = 200
) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    process = getattr(output, "process", None)
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(
                f"the process serving {url} exited ({process.returncode}):\n{output()[-4000:]}"
            )
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == status:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    raise AssertionError(
        f"{url} not answering {status} after {timeout}s ({last}):\n{output()[-4000:]}"
    )
