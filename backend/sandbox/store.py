"""The sandbox's memory: one JSON-able dict per provider, guarded by one lock, optionally saved
to a file so that a restarted `make run` keeps its customers, invoices and emails.

Tested in tests/sandbox/ (every emulator keeps its state here)."""

from __future__ import annotations

import json
import os
import secrets
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_ALPHABET = string.ascii_letters + string.digits
assert len(_ALPHABET) == 62


def new_id(prefix: str, length: int = 24) -> str:
    """Ids shaped like the providers' own (``cus_`` + 24 characters for Stripe)."""
    # Uniform over the alphabet as secrets.choice is, from one read of the system's randomness
    # rather than one a character (a send of 1,000 personalizations makes thousands of ids):
    # bytes below 248 (4 x 62) map evenly, the others are dropped.
    chosen = ""
    while len(chosen) < length:
        chosen += "".join(_ALPHABET[b % 62] for b in secrets.token_bytes(2 * length) if b < 248)
    return prefix + chosen[:length]


class Store:
    def __init__(self, path: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._path = path
        self._data: dict[str, dict[str, Any]] = {}
        self._dirty = False
        if path is not None and path.exists():
            self._data = json.loads(path.read_text())

    @contextmanager
    def section(self, name: str) -> Iterator[dict[str, Any]]:
        """Exclusive access to one provider's state for the block.

        Not written to disk here: the app saves every few seconds and at shutdown (see
        ``save``), so a burst of API calls does not rewrite the file once per request.
        """
        with self._lock:
            yield self._data.setdefault(name, {})
            self._dirty = True

    def lookup(self, name: str, *path: str) -> Any:
        """One value of a provider's state (None if absent), read under the lock without
        copying the rest or marking the store changed: for a look-up on every request."""
        with self._lock:
            value: Any = self._data.get(name, {})
            for part in path:
                if not isinstance(value, dict):
                    return None
                value = value.get(part)
            return value

    def read(self, name: str) -> dict[str, Any]:
        """A deep copy for display: the control page never holds the lock while rendering."""
        with self._lock:
            copied: dict[str, Any] = json.loads(json.dumps(self._data.get(name, {})))
            return copied

    def save(self) -> None:
        """Write the state to its file if anything changed since the last save."""
        if self._path is None or not self._dirty:
            return
        with self._lock:
            payload = json.dumps(self._data)
            self._dirty = False
        tmp = self._path.with_suffix(".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(payload)
        os.replace(tmp, self._path)


def now() -> int:
    """Unix seconds, as Stripe and SendGrid put times in their objects."""
    return int(time.time())
