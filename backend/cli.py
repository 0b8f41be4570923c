"""Operator commands: `python -m backend.cli migrate | seed | check | banner`."""

from __future__ import annotations

import argparse
import sys

from alembic import command
from alembic.config import Config

from backend.config import SettingsError, get_settings
from backend.db import get_engine, session_scope
from backend.services import demo, readiness


def _alembic_config() -> Config:
    config = Config(str(readiness.MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(readiness.MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", get_settings().database_url.replace("%", "%%"))
    return config


def migrate() -> None:
    command.upgrade(_alembic_config(), "head")


def seed() -> None:
    with session_scope() as session:
        report = demo.seed(session)
    created = ", ".join(report.created_workspaces) or "none"
    kept = ", ".join(report.skipped_workspaces) or "none"
    print(f"demo data: created {created}; already there: {kept}")


def check() -> None:
    settings = get_settings()
    state = readiness.check(get_engine())
    print(f"provider mode: {settings.provider_mode.value}; database: {state.reason}")
    if not state.ready:
        raise SystemExit(1)


def banner() -> None:
    settings = get_settings()
    owner = demo.DEMO_LOGINS[0]
    lines = [
        "",
        "Integrations Hub is starting (it is ready when the console prints 'App running').",
        f"  console  {settings.public_console_url}",
        f"  sidecar  {settings.public_sidecar_url}  (/readyz, /docs)",
        f"  sandbox  {settings.sandbox_url}  (emulated Stripe, SendGrid, Drive, Messenger, Slack)"
        if settings.provider_mode.value == "sandbox"
        else "  provider mode: live (real providers)",
        f"  log in as {owner.email} / {demo.DEMO_PASSWORD}  (owner, {owner.workspace})",
        "  other demo logins (same password): "
        + ", ".join(f"{d.email} ({d.role.value})" for d in demo.DEMO_LOGINS[1:5]),
        "",
    ]
    print("\n".join(lines))


COMMANDS = {"migrate": migrate, "seed": seed, "check": check, "banner": banner}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m backend.cli")
    parser.add_argument("command", choices=sorted(COMMANDS))
    args = parser.parse_args(argv)
    try:
        COMMANDS[args.command]()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
