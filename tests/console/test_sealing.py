"""No secret in a var the browser receives; every pickled state sealed at rest."""

from __future__ import annotations

import pickle

import reflex as rx
from reflex.state import BaseState

import console.console  # noqa: F401 - registers every page's state
from console.state import sealing
from console.state.integrations import ManageState

CANARY = "sk_test_CANARY_4c1d9e0b7a"


def _client_visible(cls: type[BaseState]) -> set[str]:
    return {n for n in (*cls.base_vars, *cls.computed_vars) if not n.startswith("_")}


def _all_states(cls: type[BaseState]) -> list[type[BaseState]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_states(sub))
    return found


def test_no_client_visible_var_is_named_for_a_secret() -> None:
    suspicious = ("key", "secret", "password", "pending_keys", "credential")
    for cls in _all_states(rx.State):
        for name in _client_visible(cls) - {"key_fields", "token"}:
            assert not any(word in name for word in suspicious), f"{cls.__name__}.{name}"
    assert "pending_keys" not in _client_visible(ManageState)


def test_a_pickled_state_holding_a_pasted_key_shows_no_trace_of_it() -> None:
    state = ManageState(_reflex_internal_init=True)  # type: ignore[call-arg]
    state._pending_keys = sealing.seal_json({"secret_key": CANARY})
    state.result = CANARY  # even a public var, at rest
    blob = state._serialize()
    assert CANARY.encode() not in blob
    loaded = BaseState._deserialize(data=blob)
    assert sealing.open_json(vars(loaded)["_pending_keys"]) == {"secret_key": CANARY}


def test_a_pickle_that_does_not_open_is_refused() -> None:
    blob = pickle.dumps(sealing._Sealed(b"\\x00" * 40))
    try:
        BaseState._deserialize(data=blob)
    except Exception as exc:  # Reflex turns it into a schema mismatch: a fresh state
        assert "unpickled" in str(exc) or exc.__class__.__name__.endswith("Error")
    else:
        raise AssertionError("an altered pickle was read")
