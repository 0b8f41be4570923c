"""The cells of the isolation matrix (tests/security/test_isolation_matrix.py): how a handler's
classification reads, the five cases each handler is called in, and what each case requires.

A *write* is a change to a row, seen by fingerprinting every table per owning workspace before
and after (matrix_snapshot.fingerprint). A *read* is another tenant's marker anywhere in what the
operator holds afterwards (every var of every state, the events sent back), or a figure of
another tenant's (a handler's ``shows`` on the other tenant's ids).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from models import Integration, IntegrationStatus
from tests.support import matrix_console
from tests.support.matrix_snapshot import Snapshot, changed, fingerprint
from tests.support.matrix_world import MARKERS, Tenant, World

Does = Literal["local", "read", "change", "account"]
Needs = Literal["any", "admin", "owner"]
Args = Callable[[Tenant, Tenant], tuple[Any, ...]]  # (whose ids, who acts) -> arguments
Prepare = Callable[[Any, Tenant, Tenant], None]
Shows = Callable[[matrix_console.Called, Tenant], bool]

CASES = ("own", "foreign", "signed_out", "viewer", "plan")
SIGNED_OUT_TOKENS = ("", "not-a-session-token")


def no_args(ids: Tenant, me: Tenant) -> tuple[Any, ...]:
    return ()


@dataclass(frozen=True)
class Handler:
    """How the matrix calls one handler and what it may do.

    - ``does``: ``local`` (UI state only: no row may change in any cell), ``read`` (no row may
      change), ``change`` (the own cell must change the workspace's rows), ``account`` (logs
      in or out, switches workspace: the own cell must change A's rows, its session).
    - ``needs``: who may do it: ``owner``, ``admin`` (owners and admins) or ``any`` (viewers
      too); the own and foreign cells act as A's owner for ``owner``, else as A's admin.
    - ``args(ids, me)`` / ``prepare(state, ids, me)``: the arguments, and what earlier events
      would have left in the state (the show, the slug, a pasted key…); ``ids`` is whose
      rows they name (A's, or B's in the foreign cell), ``me`` the acting tenant.
    - ``ids``: it is handed ids (a show, an invoice, a job…); without, the foreign cell acts
      on A's own page and checks that nothing of B's moves or shows.
    - ``path(ids)``: the page it runs on (``router.url``).
    - ``plan``: the plan feature it needs; the plan cell (Free) must then change nothing of F.
    - ``shows(called, ids)``: the own cell must show the workspace's data (in its state or the
      events it sent); with B's ids, the foreign cell must not.
    - ``may_write``: tables a viewer's or a signed-out call may change (of its own workspace
      or the platform's), because that is the handler's point (logging out revokes one's own
      session; a failed login is counted); a signed-out call never makes a session.
    - ``signed_out_args``: what a signed-out browser sends instead (a wrong password).
    - ``reveals``: why another workspace's name may be shown in this handler's foreign cell.
    """

    does: Does
    needs: Needs = "any"
    args: Args = no_args
    prepare: Prepare | None = None
    ids: bool = False
    path: Callable[[Tenant], str] = lambda ids: "/"
    plan: str | None = None
    shows: Shows | None = None
    may_write: frozenset[str] = frozenset()
    signed_out_args: Args | None = None
    reveals: str = ""


FINDINGS = (
    "cross-workspace reads",
    "cross-workspace writes",
    "viewer changes",
    "plan bypasses",
    "signed-out changes or reads",
    "reads or UI events that wrote",
    "own cells that did not work",
    "handlers that raised",
)


@dataclass
class Tally:
    cells: int = 0
    handlers: int = 0
    routes: int = 0
    route_cells: int = 0
    found: Counter[str] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)
    revealed: list[str] = field(default_factory=list)

    def flag(self, kind: str, where: str, detail: str) -> None:
        assert kind in FINDINGS, kind
        self.found[kind] += 1
        self.details.append(f"{where}: {kind}: {detail}")


def _marks(seen: str, tenants: set[str]) -> list[str]:
    return sorted(k for k in tenants if MARKERS[k] in seen)


def _live_integrations(engine: Engine, workspace_id: int) -> list[str]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(Integration.provider).where(
                    Integration.workspace_id == workspace_id,
                    Integration.status != IntegrationStatus.INACTIVE,
                )
            )
        )


class ConsoleMatrix:
    """Runs every case of a handler on the world, back to the world as built after any cell
    that changed a row."""

    def __init__(self, engine: Engine, world: World, snapshot: Snapshot, tally: Tally) -> None:
        self.engine, self.world, self.snapshot, self.tally = engine, world, snapshot, tally
        self.pristine = fingerprint(engine, world)

    def run(self, name: str, spec: Handler) -> None:
        self.tally.handlers += 1
        for case in CASES:
            self.tally.cells += 1
            getattr(self, f"_{case}")(f"{name} [{case}]", name, spec)

    # -- one call ------------------------------------------------------------------------

    def _call(
        self,
        name: str,
        spec: Handler,
        *,
        token: str,
        ids: Tenant,
        me: Tenant,
        args: Args | None = None,
    ) -> tuple[matrix_console.Called, set[tuple[str, str]], list[str]]:
        cls, method = matrix_console.handlers()[name]
        prepare = spec.prepare
        called = matrix_console.call(
            cls,
            method,
            token=token,
            path=spec.path(ids),
            args=(args or spec.args)(ids, me),
            prepare=None if prepare is None else (lambda state: prepare(state, ids, me)),
        )
        live = _live_integrations(self.engine, self.world["F"].workspace_id)
        diff = changed(self.pristine, fingerprint(self.engine, self.world))
        if diff:
            self.snapshot.restore({table for table, _ in diff})
            # A cell starts from the world as built, or its findings would be another's.
            assert not changed(self.pristine, fingerprint(self.engine, self.world)), name
        return called, diff, live

    def _common(
        self, where: str, spec: Handler, called: matrix_console.Called, diff: set[tuple[str, str]]
    ) -> None:
        if called.error is not None:
            self.tally.flag("handlers that raised", where, repr(called.error))
        if spec.does in ("local", "read") and diff:
            self.tally.flag("reads or UI events that wrote", where, str(sorted(diff)))

    def _role(self, spec: Handler) -> str:
        return "owner" if spec.needs == "owner" else "admin"

    # -- the five cases ----------------------------------------------------------------------

    def _own(self, where: str, name: str, spec: Handler) -> None:
        a = self.world["A"]
        called, diff, _ = self._call(name, spec, token=a.tokens[self._role(spec)], ids=a, me=a)
        self._common(where, spec, called, diff)
        self._others_untouched(where, spec, called, diff, mine={"A", "A2"})
        owners = {owner for _, owner in diff}
        if spec.does in ("change", "account") and not owners & {"A", "A2"}:
            self.tally.flag("own cells that did not work", where, "changed nothing of A's")
        if spec.shows is not None and not spec.shows(called, a):
            self.tally.flag("own cells that did not work", where, "A's data not shown as A's")

    def _foreign(self, where: str, name: str, spec: Handler) -> None:
        a, b = self.world["A"], self.world["B"]
        ids = b if spec.ids else a
        called, diff, _ = self._call(name, spec, token=a.tokens[self._role(spec)], ids=ids, me=a)
        self._common(where, spec, called, diff)
        self._others_untouched(where, spec, called, diff, mine={"A", "A2"}, foreign=True)
        if spec.ids and spec.shows is not None and spec.shows(called, b):
            self.tally.flag("cross-workspace reads", where, "B's data shown to A")

    def _signed_out(self, where: str, name: str, spec: Handler) -> None:
        a = self.world["A"]
        for token in SIGNED_OUT_TOKENS:
            called, diff, _ = self._call(
                name, spec, token=token, ids=a, me=a, args=spec.signed_out_args
            )
            self._common(where, spec, called, diff)
            if elsewhere := sorted((t, o) for t, o in diff if o not in {"A", "A2", "platform"}):
                self.tally.flag("cross-workspace writes", where, str(elsewhere))
            beyond = {(t, o) for t, o in diff if t not in spec.may_write - {"sessions"}}
            if beyond:
                self.tally.flag("signed-out changes or reads", where, f"wrote {sorted(beyond)}")
            if shown := _marks(called.visible(), set(MARKERS)):
                self.tally.flag("signed-out changes or reads", where, f"shows {shown}'s data")

    def _viewer(self, where: str, name: str, spec: Handler) -> None:
        a = self.world["A"]
        called, diff, _ = self._call(name, spec, token=a.tokens["viewer"], ids=a, me=a)
        self._common(where, spec, called, diff)
        self._others_untouched(where, spec, called, diff, mine={"A", "A2"})
        allowed = spec.may_write if spec.needs == "any" else frozenset()
        beyond = {(t, o) for t, o in diff if t not in allowed}
        if beyond:
            self.tally.flag("viewer changes", where, str(sorted(beyond)))

    def _plan(self, where: str, name: str, spec: Handler) -> None:
        f = self.world["F"]
        called, diff, live = self._call(name, spec, token=f.tokens["owner"], ids=f, me=f)
        self._common(where, spec, called, diff)
        self._others_untouched(where, spec, called, diff, mine={"F"})
        if live:
            self.tally.flag("plan bypasses", where, f"Free workspace has {live} switched on")
        if spec.plan is not None and (mine := {(t, o) for t, o in diff if o == "F"}):
            self.tally.flag("plan bypasses", where, f"{spec.plan} on Free changed {sorted(mine)}")

    def _others_untouched(
        self,
        where: str,
        spec: Handler,
        called: matrix_console.Called,
        diff: set[tuple[str, str]],
        *,
        mine: set[str],
        foreign: bool = False,
    ) -> None:
        """Nothing of another workspace written (nor of the platform's, beyond ``may_write``),
        nothing of another tenant's shown."""
        written = sorted(
            (t, o)
            for t, o in diff
            if o not in mine and not (o == "platform" and t in spec.may_write)
        )
        if written:
            self.tally.flag("cross-workspace writes", where, str(written))
        if shown := _marks(called.visible(), {"A", "B", "F"} - mine):
            if foreign and spec.reveals:
                self.tally.revealed.append(f"{where}: {shown} ({spec.reveals})")
            else:
                self.tally.flag("cross-workspace reads", where, f"shows {shown}'s markers")
