"""Which providers exist: the adapter registry behind a protocol, so that tests can pass a
catalog of their own to every connections function that takes ``catalog``.

Covered by tests/connections/test_service.py (with a catalog of fakes) and
tests/integrations/test_registry.py (the real registry).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from backend.integrations import registry as _registry
from backend.integrations.base import Provider
from backend.platform.errors import NotFound


class Catalog(Protocol):
    """What the services need of ``backend.integrations.registry`` (tests pass their own)."""

    def get(self, slug: str, /) -> Provider | None: ...

    def providers(self) -> Iterable[Provider]: ...


def registry() -> Catalog:
    """The provider registry (a module satisfies the protocol)."""
    return _registry


def provider(slug: str, catalog: Catalog | None = None) -> Provider:
    try:
        found = (catalog or registry()).get(slug)
    except LookupError:
        found = None
    if found is None:
        raise NotFound(f"There is no integration called {slug!r}.")
    return found
