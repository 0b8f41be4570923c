"""The pipeline's work: the nightly sweep for signed, paid contracts that never became an
event.

Covered by tests/jobs/test_discovery.py (what is declared here is loaded).
"""

from __future__ import annotations

from backend.db import session_scope
from backend.pipeline import orphaned_contracts
from backend.platform.periodic import periodic

# -- periodic jobs --------------------------------------------------------------------------


@periodic(
    id="orphaned-contracts",
    seconds=86400,
    description="Find signed, paid contracts that never became an event.",
)
def sweep_orphaned_contracts() -> None:
    with session_scope() as session:
        orphaned_contracts.sweep_orphaned_contracts(session)
