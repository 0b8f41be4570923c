"""A show's reconciliation with Stripe (the Reconciliation card of the Invoices tab): compare
our invoices with Stripe's now, and make ours say what Stripe says for each open difference.

Both call Stripe between short transactions of their own, so they go through
``change_in_steps`` (the service takes the engine, not a session).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import reflex as rx
from reflex.event import EventSpec

from backend.integrations.errors import ProviderError
from backend.invoicing import reconciliation
from console.state.base import REFUSALS, change_in_steps, read
from console.state.show.base import Opened, ShowState
from console.state.show.views import finding_row, read_findings, read_panel

# Stripe not answering is a refusal here too: the check or the fix did not run.
_REFUSED = (*REFUSALS, ProviderError)


class ReconciliationState(ShowState):
    findings: list[dict[str, str]] = []
    checking: bool = False
    checked: bool = False
    fixing: bool = False

    @rx.var
    def fixable_findings(self) -> int:
        return sum(1 for f in self.findings if f["fixable"])

    def _on_open(self, opened: Opened | None) -> None:
        self.checking, self.checked, self.fixing = False, False, False
        if opened is not None:
            self.findings = opened.findings

    @rx.event(background=True)
    async def check_stripe(self) -> AsyncIterator[EventSpec]:
        """Compare the show's invoices with Stripe's now (it also runs hourly)."""
        async with self:
            if self.checking or not self.loaded:
                return
            self.checking = True
            show_id = int(self.show_ref)
        try:
            outcome = await change_in_steps(
                self,
                lambda engine, actor: [
                    finding_row(f)
                    for f in reconciliation.run_for_show(engine, actor=actor, show_id=show_id)
                ],
                refuse=_REFUSED,
            )
        finally:
            async with self:
                self.checking = False
        if outcome.signed_out:
            yield self._login_redirect()
            return
        if outcome.refused is not None:
            yield rx.toast.error(f"The check did not run: {outcome.refused}")
            return
        findings = outcome.get()
        async with self:
            self.findings, self.checked = findings, True
        if findings:
            yield rx.toast.warning(
                f"{len(findings)} difference{'s' if len(findings) != 1 else ''} with Stripe: "
                "see Reconciliation."
            )
        else:
            yield rx.toast.success("Our invoices match Stripe's.")

    @rx.event(background=True)
    async def fix_findings(self) -> AsyncIterator[EventSpec]:
        """Make our invoices say what Stripe says for every open difference."""
        async with self:
            if self.fixing or not self.loaded:
                return
            self.fixing = True
            view = self._view()
        try:
            fixed = await change_in_steps(
                self,
                lambda engine, actor: (
                    reconciliation.fix_all(engine, actor=actor, show_id=view.show_id).message
                ),
                refuse=_REFUSED,
            )
            # What is open now, and the panel the fixes changed, in one short read.
            after = (
                await read(
                    self,
                    lambda s, a: (
                        read_findings(s, a.workspace_id, view.show_id),
                        read_panel(s, a.workspace_id, view),
                    ),
                    refuse=_REFUSED,
                )
                if fixed.ok
                else None
            )
        finally:
            async with self:
                self.fixing = False
        if after is None or not after.ok:
            signed_out = fixed.signed_out or (after is not None and after.signed_out)
            reason = fixed.refused if after is None else after.refused
            yield (
                self._login_redirect()
                if signed_out
                else rx.toast.error(f"Nothing was fixed: {reason}")
            )
            return
        findings, panel = after.get()
        async with self:
            self.findings = findings
            self._apply_panel(panel)
        yield rx.toast.success(fixed.get())
