"""Operator commands: `python -m backend.cli migrate | seed | check | banner`, the credential
key ring: `keys new | rotate | check` (see docs/OPERATIONS.md, "Key rotation"), and the
platform's pause of a job kind for every workspace: `outbox pause KIND | resume KIND | list`
(a workspace's owners and admins pause only their own workspace's jobs, on the Jobs page)."""

from __future__ import annotations

import argparse
import re
import sys

from alembic import command
from alembic.config import Config

# The demo seed enqueues a job: its kind is known once every domain's jobs.py is loaded.
from backend import jobs  # noqa: F401
from backend.config import ProviderMode, SettingsError, get_settings
from backend.connections import credentials
from backend.db import get_engine, session_scope
from backend.demo import seed as demo
from backend.platform import outbox, outbox_operators, outbox_pauses, readiness
from backend.platform.errors import InvalidInput
from backend.security.crypto import KeyRingError, generate_key_entry


def _alembic_config() -> Config:
    config = Config(str(readiness.MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(readiness.MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", get_settings().database_url.replace("%", "%%"))
    return config


def migrate() -> None:
    command.upgrade(_alembic_config(), "head")


def seed() -> None:
    if get_settings().provider_mode is not ProviderMode.SANDBOX:
        # Said, not failed: `make run` seeds on the way to starting, and a live deployment
        # still starts; it only never gets the demo's published logins.
        print(str(demo.LiveModeRefused()))
        return
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
    ]
    if settings.provider_mode is ProviderMode.SANDBOX:
        lines += [
            f"  log in as {owner.email} / {demo.DEMO_PASSWORD}  (owner, {owner.workspace})",
            "  other demo logins (same password): "
            + ", ".join(f"{d.email} ({d.role.value})" for d in demo.DEMO_LOGINS[1:5]),
            f"  lead form (hosted)  {settings.public_sidecar_url.rstrip('/')}/forms/{demo.STUDIO}",
        ]
    lines.append("")
    print("\n".join(lines))


def _next_key_id() -> str:
    """One more than the highest ``k<N>`` in the current ring (``k1`` if none)."""
    try:
        ids = credentials.key_ring().ids
    except KeyRingError:
        ids = set()
    numbers = [int(m.group(1)) for key_id in ids if (m := re.fullmatch(r"k(\d+)", key_id))]
    return f"k{max(numbers, default=0) + 1}"


def keys_new(key_id: str | None = None) -> None:
    """Print a new ring entry; the operator puts it first in HUB_CREDENTIAL_KEYS."""
    entry = generate_key_entry(key_id or _next_key_id())
    print(entry)
    print(
        "Put it first in HUB_CREDENTIAL_KEYS (newest first, comma-separated), restart, then "
        "run `python -m backend.cli keys rotate`; remove the old key only after that.",
        file=sys.stderr,
    )


def keys_rotate() -> None:
    """Re-encrypt every stored credential under the ring's newest key."""
    ring = credentials.key_ring()
    with session_scope() as session:
        report = credentials.rotate(session, ring)
    print(f"key {ring.current_id}: {report}")
    for row in report.unreadable:
        print(f"  unreadable: {row}", file=sys.stderr)
    if report.unreadable:
        raise SystemExit(1)


def keys_check() -> None:
    """Exit 1, naming them, when stored credentials use key ids the ring lacks."""
    ring = credentials.key_ring()
    with session_scope() as session:
        missing = credentials.check_ring(session, ring)
    if missing:
        print(credentials.missing_keys_message(missing), file=sys.stderr)
        raise SystemExit(1)
    print(f"key ring ok: {', '.join(key_id for key_id, _ in ring.keys)} (newest first)")


def outbox_pause(kind: str) -> None:
    """Hold the kind's jobs of every workspace until `outbox resume KIND`."""
    with session_scope() as session:
        added = outbox_operators.pause_platform(session, kind=kind)
    print(
        f"{kind} paused for every workspace"
        if added
        else f"{kind} was already paused for every workspace"
    )


def outbox_resume(kind: str) -> None:
    """Lift the platform's pause (a workspace's own pause of the kind stays)."""
    with session_scope() as session:
        lifted = outbox_operators.resume_platform(session, kind=kind)
    if not lifted:
        print(f"{kind} is not paused by the platform", file=sys.stderr)
        raise SystemExit(1)
    print(f"{kind} resumed for every workspace")


def outbox_list() -> None:
    """The platform's pauses, and how many workspaces also hold each kind themselves."""
    with session_scope() as session:
        held = outbox_pauses.platform_pauses(session)
    if not held:
        print("no job kind is paused by the platform")
    for pause in held:
        own = ""
        if pause.workspaces_pausing:
            own = f"; also paused by {pause.workspaces_pausing} workspace(s) themselves"
        print(
            f"{pause.kind}: paused {pause.paused_at:%Y-%m-%d %H:%M} UTC by {pause.paused_by}{own}"
        )


KEY_COMMANDS = {"rotate": keys_rotate, "check": keys_check}
OUTBOX_COMMANDS = {"pause": outbox_pause, "resume": outbox_resume}
COMMANDS = {"migrate": migrate, "seed": seed, "check": check, "banner": banner}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m backend.cli")
    parser.add_argument("command", choices=sorted([*COMMANDS, "keys", "outbox"]))
    parser.add_argument(
        "action",
        nargs="?",
        choices=sorted({"new", *KEY_COMMANDS, *OUTBOX_COMMANDS, "list"}),
        help="for `keys`: new, rotate, check; for `outbox`: pause, resume, list",
    )
    parser.add_argument("kind", nargs="?", help="for `outbox pause|resume`: the job kind")
    parser.add_argument("--id", dest="key_id", help="for `keys new`: the new key's id")
    args = parser.parse_args(argv)
    try:
        if args.command == "outbox":
            if args.action == "list":
                outbox_list()
            elif args.action in OUTBOX_COMMANDS and args.kind:
                OUTBOX_COMMANDS[args.action](args.kind)
            else:
                parser.error(
                    "outbox needs pause KIND, resume KIND or list; kinds: "
                    + ", ".join(sorted(k for k in outbox.kinds() if not k.startswith("test.")))
                )
        elif args.command == "keys":
            if args.action is None:
                parser.error("keys needs an action: new, rotate or check")
            if args.action == "new":
                keys_new(args.key_id)
            elif args.action in KEY_COMMANDS:
                KEY_COMMANDS[args.action]()
            else:
                parser.error("keys needs an action: new, rotate or check")
        else:
            COMMANDS[args.command]()
    except (SettingsError, KeyRingError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except InvalidInput as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
