"""The secrets canary (issue 13): recognisable values for every secret, and a search for them in
whatever a run left behind (log lines, database cells, pages and answers).

A canary is ``canary`` followed by a random core, inside whatever shape the secret must have
(``sk_test_51canary…``, ``whsec_canary…``). It is searched for whole and by its core, so a value
echoed in part (cut at the front or the back, as an error message might) is still found; a
mask's last four characters are not a hit. Secrets a provider hands out (OAuth tokens, a
service account's private key) are searched whole and by a slice of their middle.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, get_args

from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.config import Settings
from models import Base

_ALNUM = string.ascii_letters + string.digits
# A settings field is a secret if it is typed SecretStr or its name says so: a secret added
# as a plain str is covered too.
_SECRET_NAME = re.compile(r"key|secret|token|password", re.IGNORECASE)
_CORE_LENGTH = 16


def core() -> str:
    return secrets.token_hex(_CORE_LENGTH // 2)


def filler(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def whsec(label: str) -> str:
    """A Standard Webhooks secret holding a canary: ``whsec_`` and 44 base64 characters (33
    bytes, more than the 24 a secret needs)."""
    text = "canary" + label[:10] + core()
    return "whsec_" + text + filler(44 - len(text))


@dataclass(frozen=True)
class Term:
    label: str
    text: str


@dataclass
class Canaries:
    """Every secret of the run, by what it is (the label says where it went in)."""

    values: dict[str, str] = field(default_factory=dict)
    _terms: list[Term] = field(default_factory=list)

    def add(self, label: str, value: str, *, part: str | None = None) -> str:
        """Remember ``value``; ``part`` is the piece that must not appear on its own either
        (its random core; by default a slice of the middle of a long value)."""
        if label in self.values:
            raise ValueError(f"two canaries labelled {label!r}")
        self.values[label] = value
        self._terms.append(Term(label, value))
        if part is None and len(value) >= 24:
            middle = len(value) // 2
            part = value[middle - _CORE_LENGTH // 2 : middle + _CORE_LENGTH // 2]
        if part:
            self._terms.append(Term(label, part))
        return value

    def make(self, label: str, shape: str = "canary-{label}-{core}") -> str:
        """A new canary: ``shape`` with ``{label}`` and ``{core}`` filled in."""
        random_core = core()
        return self.add(label, shape.format(label=label, core=random_core), part=random_core)

    def found_in(self, text: str) -> dict[str, str]:
        """The labels of the canaries in ``text``, each with the text around it."""
        found = {}
        for term in self._terms:
            at = text.find(term.text)
            if at >= 0 and term.label not in found:
                found[term.label] = text[max(0, at - 80) : at + len(term.text) + 40]
        return found


@dataclass
class Hit:
    place: str
    label: str
    around: str

    def __str__(self) -> str:
        return f"{self.label} in {self.place}: …{self.around}…"


@dataclass
class Search:
    """Where a search looked, and what it found."""

    canaries: Canaries
    hits: list[Hit] = field(default_factory=list)
    places: dict[str, int] = field(default_factory=dict)

    def look(self, kind: str, place: str, content: object) -> None:
        self.places[kind] = self.places.get(kind, 0) + 1
        for label, around in sorted(self.canaries.found_in(as_text(content)).items()):
            self.hits.append(Hit(f"{kind}: {place}", label, around))

    def summary(self) -> str:
        where = ", ".join(f"{n} {kind}" for kind, n in sorted(self.places.items()))
        return (
            f"secrets canary: {len(self.canaries.values)} canaries searched for in {where}: "
            f"{len(self.hits)} hits"
        )


def as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        # Byte for byte: a canary is ASCII, so it shows through if it is there in the clear.
        return bytes(value).decode("latin-1")
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False)
    return repr(value)


# -- settings ----------------------------------------------------------------------------------


def secret_settings() -> list[str]:
    """Every secret of the settings, found from the model, never listed by hand."""
    found = []
    for name, info in Settings.model_fields.items():
        typed_secret = info.annotation is SecretStr or SecretStr in get_args(info.annotation)
        if typed_secret or _SECRET_NAME.search(name):
            found.append(name)
    return found


def _credential_keys(canaries: Canaries, label: str) -> str:
    # A key ring entry: an id (not secret: it is stored with every sealed row) and 32 bytes of
    # base64 (the secret), here "canary…" itself.
    random_core = core()
    text = "canary" + random_core
    encoded = text + filler(43 - len(text)) + "="
    canaries.add(label, encoded, part=random_core)
    return "k1:" + encoded


# The shape a secret setting must have to be usable, where "canary-<name>-<core>" is not.
_SETTING_SHAPES = {
    "platform_stripe_secret_key": "sk_test_51canary{core}PlatformKey000000000000",
    "platform_stripe_webhook_secret": "whsec_canary{core}PlatformWebhooks",
    "google_client_secret": "GOCSPX-canary{core}",
}


def setting_canaries(canaries: Canaries) -> dict[str, str]:
    """HUB_* variables holding a canary for every secret setting."""
    env = {}
    for name in secret_settings():
        label = f"setting {name}"
        if name == "credential_keys":
            value = _credential_keys(canaries, label)
        else:
            value = canaries.make(label, _SETTING_SHAPES.get(name, "canary-" + name + "-{core}"))
        env[f"HUB_{name.upper()}"] = value
    return env


# -- the database ------------------------------------------------------------------------------


def database_cells(engine: Engine) -> Iterator[tuple[str, object]]:
    """Every value of every column of every table the models declare: (table.column#row, value).
    Nothing is left out, the sealed credentials and password hashes included: they hold the
    secret only sealed or hashed, so the raw value must not show there either."""
    with Session(engine) as session:
        for table in Base.metadata.sorted_tables:
            for number, row in enumerate(session.execute(select(table)).mappings()):
                for column, value in row.items():
                    yield f"{table.name}.{column}#{number}", value


def search_database(search: Search, engine: Engine) -> None:
    for place, value in database_cells(engine):
        search.look("database cells", place, value)


def search_all(search: Search, kind: str, items: Iterable[tuple[str, Any]]) -> None:
    for place, content in items:
        search.look(kind, place, content)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
