"""One tenant's slow provider does not hold up another (issue 13, item 4), on SQLite, where every
transaction takes the database's write lock: while workspace A's "Test connection" waits on a
Stripe that answers after 8 s, workspace B's Stripe webhook is posted to the sidecar and one of
B's operators logs in.

    B's webhook = from the POST to the sidecar's 2xx (the event stored and committed)
    B's login   = ``accounts.attempt_login`` (two short transactions and the Argon2 verify)

Each round starts A's test (the service, as the console calls it, on a thread), waits until the
sandbox holds A's request, then times B's webhook and login, and checks A's test was still
waiting when both were done. Target: every webhook answered 2xx within 200 ms, every login
succeeded, both while A waited. Before the change both waited the whole 8 s.

The sidecar runs as deployed (uvicorn, its own process) and the sandbox in its own process; the
SQLite database is a file in a temporary folder, migrated.

    .venv/bin/python bench/bench_lock_hold.py
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import (
    PYTHON,
    STRIPE_SECRET,
    WORKSPACE,
    _code_version,
    _cpu_model,
    _machine_busy,
    log,
    print_conditions,
    product_env,
    seed_stripe_workspace,
    sidecar_command,
    started,
    verdict,
    wait_ready,
)
from bench_invoice_generation import wait_http
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend import config, db
from backend.accounts import service as accounts
from backend.connections import credentials, oauth, providers
from backend.platform.actors import Actor
from models import Integration, IntegrationStatus, Plan, Role, Workspace
from tests.api.webhook_support import stripe_v1
from tests.support.migrate import upgrade
from tests.support.pgserver import free_port

TARGET_MS = 200.0
SLOW_SECONDS = 8.0
PASSWORD = "bench-lock-hold-2026"  # noqa: S105 - a throwaway database's login
POLICY = accounts.LoginPolicy(
    session_ttl=dt.timedelta(hours=1), free_failures=3, max_delay_seconds=60
)


def seed(engine: Engine, sandbox_url: str) -> Actor:
    """A: Stripe connected with a sandbox account's key. B (the bench's webhook workspace):
    Stripe with the bench's signing secret, and an admin who logs in."""
    seed_stripe_workspace(engine)
    key = httpx.post(
        f"{sandbox_url}/stripe/_sandbox/accounts", json={"name": "Slow Boutique"}, timeout=30
    ).json()["secret_key"]
    password_hash = accounts.new_password_hash(PASSWORD)  # before the transaction opens
    with Session(engine, expire_on_commit=False) as session:
        alpha = Workspace(name="Alpha", slug="alpha", plan=Plan.PRO)
        session.add(alpha)
        session.flush()
        row = Integration(
            workspace_id=alpha.id,
            provider="stripe",
            display_name="Stripe",
            status=IntegrationStatus.ACTIVE,
        )
        session.add(row)
        session.flush()
        credentials.seal(row, {"secret_key": key})
        owner = accounts.create_operator(
            session, email="owner@alpha.example", name="Owner", password_hash=password_hash
        )
        accounts.add_member(session, workspace_id=alpha.id, operator_id=owner.id, role=Role.OWNER)
        beta = session.scalars(select(Workspace).where(Workspace.slug == WORKSPACE)).one()
        clerk = accounts.create_operator(
            session, email="clerk@beta.example", name="Clerk", password_hash=password_hash
        )
        accounts.add_member(session, workspace_id=beta.id, operator_id=clerk.id, role=Role.ADMIN)
        session.commit()
        return Actor(owner.id, alpha.id, Role.OWNER, owner.email, owner.name)


def in_flight(sandbox_url: str) -> int:
    counts = httpx.get(f"{sandbox_url}/_sandbox/requests", timeout=10).json()
    return int(counts.get("stripe", {}).get("in_flight", 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="A's slow tests, one at a time")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-lock-hold-"))
    url = f"sqlite:///{folder / 'hub.db'}"
    sandbox_port, sidecar_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = product_env(url, HUB_PROVIDER_MODE="sandbox", HUB_SANDBOX_PORT=str(sandbox_port))
    # This process reads the same settings: the service it calls is the console's.
    os.environ.update({k: v for k, v in env.items() if k.startswith("HUB_")})
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    engine = db.get_engine()
    upgrade(engine)

    webhooks_ms: list[float] = []
    logins_ms: list[float] = []
    statuses: list[int] = []
    logged_in: list[bool] = []
    a_waiting: list[bool] = []
    a_seconds: list[float] = []
    a_ok: list[bool] = []
    with contextlib.ExitStack() as stack:
        sandbox = stack.enter_context(started("sandbox", [PYTHON, "-m", "backend.sandbox"], env))
        wait_http(f"{sandbox_url}/_sandbox/healthz", sandbox)
        sidecar = stack.enter_context(started("sidecar", sidecar_command(sidecar_port, 1), env))
        wait_ready(sidecar_port, sidecar)
        owner_a = seed(engine, sandbox_url)
        httpx.post(
            f"{sandbox_url}/_sandbox/switches",
            json={"stripe": {"latency_seconds": SLOW_SECONDS}},
            timeout=10,
        ).raise_for_status()
        context = providers.provider_context("stripe", engine, workspace_id=owner_a.workspace_id)
        busy0, t0 = _machine_busy(), time.monotonic()
        with httpx.Client(timeout=60) as client:
            for round_ in range(args.rounds):
                outcome: list[bool] = []
                started_at = time.monotonic()

                def test_a(done: list[bool] = outcome) -> None:
                    done.append(
                        oauth.test(
                            engine, actor=owner_a, provider_slug="stripe", context=context
                        ).ok
                    )

                a_test = threading.Thread(target=test_a)
                a_test.start()
                while in_flight(sandbox_url) < 1 and a_test.is_alive():
                    time.sleep(0.02)
                body = json.dumps(
                    {
                        "id": f"evt_lock_{round_}",
                        "type": "invoice.paid",
                        "object": "event",
                        "data": {"object": {}},
                    }
                ).encode()
                t = int(time.time())
                sent = time.perf_counter()
                answer = client.post(
                    f"http://127.0.0.1:{sidecar_port}/webhooks/stripe/{WORKSPACE}",
                    content=body,
                    headers={"Stripe-Signature": f"t={t},v1={stripe_v1(body, STRIPE_SECRET, t)}"},
                )
                webhooks_ms.append((time.perf_counter() - sent) * 1000)
                statuses.append(answer.status_code)
                began = time.perf_counter()
                login = accounts.attempt_login(
                    engine, email="clerk@beta.example", password=PASSWORD, policy=POLICY
                )
                logins_ms.append((time.perf_counter() - began) * 1000)
                logged_in.append(isinstance(login, accounts.LoginResult))
                a_waiting.append(a_test.is_alive())
                a_test.join()
                a_seconds.append(time.monotonic() - started_at)
                a_ok.append(bool(outcome and outcome[0]))
                log(
                    f"round {round_ + 1}: B's webhook {statuses[-1]} in {webhooks_ms[-1]:.1f} ms, "
                    f"login {'ok' if logged_in[-1] else login} in {logins_ms[-1]:.1f} ms, "
                    f"A's test {'still waiting' if a_waiting[-1] else 'DONE'} "
                    f"(it took {a_seconds[-1]:.1f} s)"
                )
        elapsed = time.monotonic() - t0
        machine = (_machine_busy() - busy0) / elapsed

    facts = {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "database": f"SQLite {sqlite3.sqlite_version}, a file, WAL, BEGIN IMMEDIATE",
        "sidecar": "uvicorn backend.api.app:app, 1 worker, its own process",
        "sandbox": f"python -m backend.sandbox, Stripe answering after {SLOW_SECONDS:g} s",
        "A": "oauth.test (the console's Test connection) on a thread of this process",
        "python": sys.version.split()[0],
        "code": _code_version(),
        "machine_busy_during_rounds": f"{machine:.2f} of {os.cpu_count()} cores",
    }
    print()
    print("== one tenant's slow provider call (bench/bench_lock_hold.py)")
    print_conditions(facts)
    print(
        f"B's webhook over {len(webhooks_ms)} rounds: median {statistics.median(webhooks_ms):.1f} "
        f"ms, max {max(webhooks_ms):.1f} ms; B's login: median "
        f"{statistics.median(logins_ms):.1f} ms, max {max(logins_ms):.1f} ms; A's test: "
        f"median {statistics.median(a_seconds):.1f} s"
    )
    return verdict(
        [
            (
                f"B's webhook 2xx within {TARGET_MS:g} ms while A waits",
                all(200 <= s < 300 for s in statuses) and max(webhooks_ms) <= TARGET_MS,
                f"statuses {sorted(set(statuses))}, max {max(webhooks_ms):.1f} ms",
            ),
            (
                "B's login succeeds while A waits",
                all(logged_in),
                f"{sum(logged_in)} of {len(logged_in)}",
            ),
            (
                "A's test still waiting when both were done, and it passed",
                all(a_waiting) and all(a_ok),
                f"waiting {sum(a_waiting)} of {len(a_waiting)}, passed {sum(a_ok)}",
            ),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
