"""The Manage page's "Save anyway, as inactive" (console/state/integrations.py) says what the
service did: saved inactive, or refused (nothing saved). It used to say "Saved as inactive"
whatever came back; the isolation matrix's foreign cell (another workspace's Stripe key, which
the service refuses) showed it."""

from __future__ import annotations

from typing import Any

import pytest

from backend.connections.views import ConnectResult
from console.state import integrations, sealing
from console.state.base import Outcome
from console.state.integrations import ManageState
from models import IntegrationStatus
from tests.support.matrix_console import call


def _save_anyway(monkeypatch: pytest.MonkeyPatch, result: ConnectResult) -> Any:
    async def change(state: object, work: object, **_: object) -> Outcome[ConnectResult]:
        return Outcome(value=result)

    async def read(state: object, work: object, **_: object) -> Outcome[object]:
        return Outcome(signed_out=True)  # the page's refresh: not this test's subject

    # The service's answer, whichever way the page calls it: save anyway runs in steps
    # (change_in_steps: the connection test runs with no transaction open).
    monkeypatch.setattr(integrations, "change", change)
    monkeypatch.setattr(integrations, "change_in_steps", change)
    monkeypatch.setattr(integrations, "read", read)

    def pending(state: Any) -> None:
        state.slug = "stripe"
        state._pending_keys = sealing.seal_json({"secret_key": "sk_test_pasted"})

    called = call(
        ManageState, "save_inactive", token="t", path="/integrations/stripe", prepare=pending
    )
    assert called.error is None
    assert called.state._pending_keys == b"" and not called.state.offer_inactive
    return called.state


def test_a_refused_save_says_why_and_never_that_it_saved(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = "This Stripe account (acct_1) is already connected to the workspace “Other”."
    state = _save_anyway(monkeypatch, ConnectResult(False, False, refused))
    assert (state.result_ok, state.result) == (False, refused)


def test_a_key_that_failed_its_test_is_saved_inactive(monkeypatch: pytest.MonkeyPatch) -> None:
    saved = ConnectResult(False, True, "Key refused", status=IntegrationStatus.INACTIVE)
    state = _save_anyway(monkeypatch, saved)
    assert state.result == "Saved as inactive: fix the keys and test again to turn it on."
    assert not state.result_ok
