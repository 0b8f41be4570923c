"""What the hub learnt about a connection, as against what its owner set: e.g. when Google ends
a Drive grant (``google_tokens.REFRESH_EXPIRY``). Kept in the integration's non-secret JSON
(``integrations.settings``) under a key of its own, beside the owner's settings.

Why there and not sealed with the credentials: these are no secret, and an alert rule reads
them every minute for every workspace; sealed, each read would need the key ring and a
decryption, and a key missing from the ring would hide them. A column would do as well for one
fact, but costs a migration for each new one; the JSON is read whole with the row anyway.

The owner's settings are written through the provider's settings model, which knows nothing of
these: ``kept`` carries them across such a write. They describe one grant: connecting again
replaces them (``replaced``), connecting with keys or disconnecting drops them.

Tested in tests/connections/test_oauth.py (through Connect with Google and its settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Pydantic takes no field whose name starts with "_": no provider's setting can collide.
KEY = "_facts"


def of(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The facts kept in ``settings`` (an empty dict when none)."""
    found = (settings or {}).get(KEY)
    return dict(found) if isinstance(found, Mapping) else {}


def replaced(settings: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` (the owner's) with exactly ``facts`` beside them."""
    plain = {k: v for k, v in settings.items() if k != KEY}
    return plain | ({KEY: dict(facts)} if facts else {})


def kept(before: Mapping[str, Any] | None, settings: Mapping[str, Any]) -> dict[str, Any]:
    """New owner's ``settings``, with the facts ``before`` held."""
    return replaced(settings, of(before))


def dropped(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    return replaced(settings or {}, {})
