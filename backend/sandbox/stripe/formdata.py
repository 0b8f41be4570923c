"""Stripe's wire format for parameters: form fields with bracketed keys
(``metadata[show]=12``, ``lines[0][price_data][unit_amount]=500``) into nested dicts and lists.

Tested in tests/sandbox/test_stripe.py and tests/sandbox/test_stripe_fidelity.py (through the
official stripe SDK)."""

from __future__ import annotations

import re
from typing import Any

_PART = re.compile(r"\[([^\]]*)\]")


def _split(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    return [head, *_PART.findall("[" + rest)] if rest else [head]


def decode(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = _split(key)
        node: Any = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            nxt = None if last else parts[index + 1]
            container: Any = [] if nxt is not None and (nxt == "" or nxt.isdigit()) else {}
            if isinstance(node, list):
                position = len(node) if part == "" else int(part)
                while len(node) <= position:
                    node.append(None)
                if last:
                    node[position] = value
                else:
                    if node[position] is None:
                        node[position] = container
                    node = node[position]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, container)
    decoded: dict[str, Any] = _lists_without_gaps(root)
    return decoded


def _lists_without_gaps(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists_without_gaps(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lists_without_gaps(v) for v in value if v is not None]
    return value


def as_int(value: Any, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    return int(value)


def as_bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    return str(value).lower() == "true"
