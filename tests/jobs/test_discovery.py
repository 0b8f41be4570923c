"""Every domain's work is found by rule: a job kind, inbox handler or periodic job is declared
only in a ``backend/<domain>/jobs.py``, and loading ``backend.jobs`` (what the scheduler, the
sidecar, the console and the CLI do) registers every one of them.

The source is read (ast) rather than trusted: a ``@job_kind`` added to a service module, or a
``jobs.py`` in a package discovery skips, fails here before a scheduler silently ignores it.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import backend
from backend.jobs import discovery
from backend.platform import inbox, outbox, periodic

ROOT = Path(backend.__file__).resolve().parent.parent
# The registries themselves define what registers; they declare nothing of their own.
REGISTRIES = {
    "backend.platform.outbox": {"declare", "job_kind"},
    "backend.platform.inbox": {"register"},
    "backend.platform.periodic": {"periodic"},
}


@dataclass(frozen=True)
class Declaration:
    module: str  # dotted name of the module the call is in
    registry: str  # one of REGISTRIES
    call: ast.Call
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _declarations(path: Path, module: str | None = None) -> list[Declaration]:
    """Calls of a registering function in one source file, however it was imported."""
    module = module or _module_name(path)
    if module in REGISTRIES:
        return []
    tree = ast.parse(path.read_text(), filename=str(path))
    modules: dict[str, str] = {}  # local name -> registry module
    functions: dict[str, str] = {}  # local name -> registry module (for a function imported)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in REGISTRIES:
                    modules[alias.asname or alias.name] = full
                elif node.module in REGISTRIES and alias.name in REGISTRIES[node.module]:
                    functions[alias.asname or alias.name] = node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in REGISTRIES and alias.asname:
                    modules[alias.asname] = alias.name
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        registry = None
        if isinstance(func, ast.Name) and func.id in functions:
            registry = functions[func.id]
        elif isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Name) and func.value.id in modules:
                registry = modules[func.value.id]
            elif ast.unparse(func.value) in REGISTRIES:  # backend.platform.outbox.declare
                registry = ast.unparse(func.value)
            if registry is not None and func.attr not in REGISTRIES[registry]:
                registry = None
        if registry is not None:
            found.append(Declaration(module, registry, node, node.lineno))
    return found


def _all_declarations() -> list[Declaration]:
    return [d for path in sorted((ROOT / "backend").rglob("*.py")) for d in _declarations(path)]


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return call.args[position]


def _value(expression: ast.expr, module: str) -> Any:
    """An argument's value, evaluated where it was written (``invoicing.CREATE_KIND``)."""
    namespace = vars(importlib.import_module(module))
    return eval(compile(ast.Expression(expression), module, "eval"), dict(namespace))  # noqa: S307


def _declared() -> tuple[set[str], dict[tuple[str, str], object], set[str]]:
    """(job kinds, (provider, event type) -> handler, periodic ids) as the source declares them."""
    kinds: set[str] = set()
    handlers: dict[tuple[str, str], object] = {}
    periodics: set[str] = set()
    for d in _all_declarations():
        if d.registry == "backend.platform.outbox":
            kinds.add(_value(_argument(d.call, 0, "kind"), d.module))
        elif d.registry == "backend.platform.inbox":
            provider = _value(_argument(d.call, 0, "provider"), d.module)
            table = _value(_argument(d.call, 1, "handlers"), d.module)
            handlers.update({(provider, event): h for event, h in table.items()})
        else:
            periodics.add(_value(_argument(d.call, 0, "id"), d.module))
    return kinds, handlers, periodics


def test_work_is_declared_only_in_a_domains_jobs_module() -> None:
    allowed = set(discovery.job_modules())
    misplaced = [
        f"{d.module}:{d.line} ({d.registry})"
        for d in _all_declarations()
        if d.module not in allowed
    ]
    assert misplaced == [], (
        "declare job kinds, inbox handlers and periodic jobs in backend/<domain>/jobs.py, "
        f"which backend.jobs loads: {misplaced}"
    )


def test_every_jobs_module_in_a_domain_is_discovered() -> None:
    on_disk = {
        _module_name(path)
        for path in (ROOT / "backend").glob("*/jobs.py")
        if f"backend.{path.parent.name}" not in discovery.SKIPPED
    }
    assert on_disk and set(discovery.job_modules()) == on_disk
    assert set(discovery.load()) == on_disk


def test_the_registries_hold_everything_declared() -> None:
    discovery.load()
    kinds, handlers, periodics = _declared()
    assert kinds and handlers and periodics
    assert kinds <= set(outbox.kinds())
    assert {key: inbox.handler_for(*key) for key in handlers} == handlers
    assert periodics <= {job.id for job in periodic.declared()}


def test_the_scan_finds_work_declared_in_a_service_module(tmp_path: Path) -> None:
    # The guard itself: a declaration in a service module is seen, however it was imported.
    source = tmp_path / "service.py"
    source.write_text(
        "from backend.platform import outbox as ob\n"
        "from backend.platform.inbox import register\n"
        "import backend.platform.periodic\n"
        "@ob.job_kind('x.y', provider='stripe')\n"
        "def run(session, job): ...\n"
        "register('stripe', {})\n"
        "@backend.platform.periodic.periodic(id='z', seconds=1, description='')\n"
        "def tick(): ...\n"
    )
    found = _declarations(source, "backend.invoicing.service")
    assert sorted(d.registry for d in found) == sorted(REGISTRIES)
    assert not {d.module for d in found} & set(discovery.job_modules())


_REPORT = """
import json, sys
import {entry}
from backend.platform import inbox, outbox, periodic
json.dump({{
    "kinds": sorted(outbox.kinds()),
    "handlers": sorted(f"{{p}} {{e}}" for p, e in inbox.handled()),
    "periodic": sorted(job.id for job in periodic.declared()),
    "scheduled": {scheduled},
}}, sys.stdout)
"""


def _fresh(entry: str, scheduled: str = "None") -> dict[str, Any]:
    """What a new process that imports ``entry`` has registered."""
    code = _REPORT.format(entry=entry, scheduled=scheduled)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_a_fresh_process_loads_exactly_what_is_declared() -> None:
    scheduler = _fresh(
        "scheduler", scheduled="sorted(job.id for job in scheduler.build_scheduler().get_jobs())"
    )
    kinds, handlers, periodics = _declared()
    assert scheduler["kinds"] == sorted(kinds)
    assert scheduler["handlers"] == sorted(f"{p} {e}" for p, e in handlers)
    assert scheduler["periodic"] == sorted(periodics) == scheduler["scheduled"]


# The module each process starts from (Procfile, and the CLI): uvicorn's backend.api.app,
# reflex's console.console, python -m backend.cli.
@pytest.mark.parametrize(
    "entry", ["backend.jobs", "backend.api.app", "backend.cli", "console.console"]
)
def test_every_process_loads_the_kinds_the_scheduler_uses(entry: str) -> None:
    scheduler = _fresh("scheduler")
    assert _fresh(entry) == scheduler


def test_every_invoice_status_event_has_its_handler() -> None:
    from backend.invoicing import events
    from backend.invoicing import jobs as invoicing_jobs

    assert set(events.EVENT_STATUS) <= set(invoicing_jobs.STRIPE_HANDLERS)
