"""Finding the work every domain declares: each ``backend/<domain>/jobs.py`` is imported, and
its outbox job kinds, inbox handlers and periodic jobs register as it loads.

A rule, not a list: a new domain's ``jobs.py`` is found without anyone remembering to add it
anywhere (tests/jobs/test_discovery.py fails on a kind, handler or periodic job declared
outside one). The scheduler, the sidecar (POST /outbox/run runs jobs), the console (the Jobs
page lists every kind) and the CLI (the demo seed enqueues a job) all import ``backend.jobs``,
so they know the same set.

The imports are dynamic (importlib): ``backend.jobs`` sits above the domains and may import
them, but names none, so a domain never appears in a list here.
"""

from __future__ import annotations

import importlib
import pkgutil

import backend

# Packages that are not domains: the scheduler wiring itself, and the processes and adapters
# above or beside the domains (the sandbox is a separate program; the product never imports it).
SKIPPED = frozenset({"backend.jobs", "backend.sandbox", "backend.integrations", "backend.api"})
MODULE = "jobs"


def domain_packages() -> list[str]:
    """Every package directly under ``backend`` that may declare work, sorted."""
    return sorted(
        f"backend.{info.name}"
        for info in pkgutil.iter_modules(backend.__path__)
        if info.ispkg and f"backend.{info.name}" not in SKIPPED
    )


def job_modules() -> list[str]:
    """The ``jobs`` module of each domain package that has one, sorted."""
    found = []
    for package in domain_packages():
        module = importlib.import_module(package)
        if any(info.name == MODULE for info in pkgutil.iter_modules(module.__path__)):
            found.append(f"{package}.{MODULE}")
    return found


def load() -> list[str]:
    """Import every domain's ``jobs`` module (again: a no-op); the names imported."""
    names = job_modules()
    for name in names:
        importlib.import_module(name)
    return names
