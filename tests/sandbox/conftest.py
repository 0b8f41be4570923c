"""The sandbox fixtures live in tests/support/sandbox_fixtures.py (shared with job tests)."""

from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox

__all__ = ["MakeSandbox", "RunningSandbox"]
