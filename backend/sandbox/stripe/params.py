"""Refuse parameters the stripe SDK does not declare, as Stripe refuses unknown ones.

Each route names the SDK's TypedDict for its parameters (``stripe.params.InvoiceCreateParams``);
nested dicts are checked against the TypedDicts their annotations name. This is how the tests
know that every parameter the product sends is one Stripe documents.

Tested in tests/sandbox/test_stripe.py and tests/sandbox/test_stripe_fidelity.py (through the
official stripe SDK).
"""

from __future__ import annotations

import functools
import importlib
import re
import sys
from typing import Any

# Request options the SDK declares beside the parameters; never on the wire as parameters.
_OPTION_KEYS = {
    "api_key",
    "idempotency_key",
    "stripe_account",
    "stripe_context",
    "stripe_version",
    "headers",
    "content_type",
    "expand",
}
_NAME = re.compile(r"ForwardRef\('(\w+)'\)|\b([A-Z]\w+Params\w*)\b")


class UnknownParameter(ValueError):
    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"Received unknown parameter: {path}")


@functools.cache
def _typed_dict(name: str) -> Any:
    for module_name in ("stripe.params", "stripe.params.checkout"):
        module = importlib.import_module(module_name)
        try:
            return getattr(module, name)
        except AttributeError:
            continue
    raise LookupError(f"the stripe SDK declares no parameter type {name}")


def _nested(cls: Any, key: str) -> list[Any]:
    """The TypedDicts a field's annotation names (one, several in a union, or inside a List)."""
    annotation = cls.__annotations__.get(key)
    if annotation is None:
        return []
    module = sys.modules[cls.__module__]
    found = []
    for forward, plain in _NAME.findall(repr(annotation)):
        candidate = getattr(module, forward or plain, None)
        if candidate is not None and hasattr(candidate, "__optional_keys__"):
            found.append(candidate)
    return found


def _keys(cls: Any) -> set[str]:
    return set(cls.__required_keys__) | set(cls.__optional_keys__)


def _check(value: Any, classes: list[Any], path: str) -> None:
    if not classes:
        return  # free-form (metadata) or a scalar
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, classes, f"{path}[{index}]")
        return
    if not isinstance(value, dict):
        return
    allowed = set().union(*(_keys(c) for c in classes))
    for key, inner in value.items():
        if key not in allowed:
            raise UnknownParameter(f"{path}[{key}]")
        owners = [c for c in classes if key in _keys(c)]
        _check(inner, [n for c in owners for n in _nested(c, key)], f"{path}[{key}]")


def validate(type_name: str, params: dict[str, Any]) -> None:
    cls = _typed_dict(type_name)
    allowed = _keys(cls) - {
        "api_key",
        "idempotency_key",
        "stripe_account",
        "stripe_context",
        "stripe_version",
        "headers",
        "content_type",
    }
    for key, value in params.items():
        if key in _OPTION_KEYS and key == "expand":
            continue
        if key not in allowed:
            raise UnknownParameter(key)
        _check(value, _nested(cls, key), key)
