"""The audit trail as a person reads it: who (by name and email, not "operator:4"), what they
did, and the change in a sentence, instead of the raw row the audit log stores."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.platform import audit
from models import AuditLog, Membership, Operator

# Processes that change things on their own, named for an operator reading the trail.
_SYSTEM_NAMES = {
    "scheduler": "Automatic (scheduler)",
    "sidecar": "Automatic (provider webhook)",
    "seed": "Demo set-up",
    "cli": "Command line",
}
FORMER_MEMBER = "A former member of this workspace"


@dataclass(frozen=True, slots=True)
class Entry:
    at: dt.datetime
    who: str
    action: str
    summary: str


def for_target(session: Session, *, workspace_id: int, target: str, limit: int = 30) -> list[Entry]:
    """The trail of one thing (``integration:stripe``), newest first, in words."""
    rows = audit.for_target(session, workspace_id=workspace_id, target=target, limit=limit)
    names = _operator_names(session, workspace_id=workspace_id, labels={r.actor for r in rows})
    return [
        Entry(
            at=row.at,
            who=names.get(row.actor) or _SYSTEM_NAMES.get(row.actor) or FORMER_MEMBER,
            action=_action(row),
            summary=describe(row.action, row.details or {}),
        )
        for row in rows
    ]


def _operator_names(
    session: Session, *, workspace_id: int, labels: Iterable[str]
) -> dict[str, str]:
    """``operator:<id>`` → "Name (email)", for members of this workspace only: someone who left
    (or an id from another workspace) is not named here."""
    ids = {
        int(label.split(":", 1)[1])
        for label in labels
        if label.startswith("operator:") and label.split(":", 1)[1].isdigit()
    }
    if not ids:
        return {}
    found = session.execute(
        select(Operator.id, Operator.name, Operator.email)
        .join(Membership, Membership.operator_id == Operator.id)
        .where(Membership.workspace_id == workspace_id, Operator.id.in_(ids))
    )
    return {f"operator:{id_}": f"{name} ({email})" for id_, name, email in found}


def _action(row: AuditLog) -> str:
    details = row.details or {}
    by_oauth = details.get("method") == "oauth"
    titles = {
        "integration.connect": "Connected through OAuth" if by_oauth else "Connected with keys",
        "integration.update": "Reconnected through OAuth" if by_oauth else "Changed the keys",
        "integration.disconnect": "Disconnected",
        "integration.settings": "Changed settings",
        "integration.refresh_failed": "Access could not be renewed",
        "integration.deactivate": "Turned off by a plan change",
        "integration.refused": "The provider refused the key",
        "integration.recovered": "Working again",
    }
    return titles.get(row.action) or _title(row.action.replace(".", " "))


def describe(action: str, details: dict[str, Any]) -> str:
    """One sentence for a change's details; unknown keys as "key: value" pairs, never a dict."""
    describer = _DESCRIBERS.get(action)
    return describer(details) if describer else _pairs(details)


def _connected(details: dict[str, Any]) -> str:
    parts = []
    if details.get("test") == "ok":
        parts.append("Connection test passed")
    elif details.get("test") == "failed":
        parts.append("Connection test failed")
    if status := details.get("status"):
        parts.append(f"status {status}")
    masked = details.get("masked") or {}
    if isinstance(masked, dict):
        parts += [f"{_words(name)} {value}" for name, value in masked.items() if value]
    if account := details.get("account_id"):
        parts.append(f"account {account}")
    sentence = "; ".join(parts) + "." if parts else ""
    if error := details.get("error"):
        sentence += f" The provider said: {error}"
    return sentence.strip()


def _disconnected(details: dict[str, Any]) -> str:
    revoked = str(details.get("revoked") or "")
    if revoked == "ok":
        return "Keys wiped and access revoked at the provider."
    if revoked.startswith("failed"):
        reason = revoked.removeprefix("failed").lstrip(": ")
        return f"Keys wiped; the provider did not confirm the revocation ({reason})."
    return "Keys wiped."


def _settings(details: dict[str, Any]) -> str:
    changed = [_words(str(name)) for name in details.get("changed") or []]
    return "Changed: " + ", ".join(changed) + "." if changed else "Saved with no change."


def _refresh_failed(details: dict[str, Any]) -> str:
    error = details.get("error")
    return f"The provider refused to renew access: {error}" if error else ""


def _refused(details: dict[str, Any]) -> str:
    error = details.get("error")
    said = f"The provider said: {error} " if error else ""
    return f"{said}Status error until a call succeeds: check or replace the key.".strip()


def _recovered(details: dict[str, Any]) -> str:
    was = details.get("was")
    return (
        f"A call succeeded again; status active (it was: {was})."
        if was
        else ("A call succeeded again; status active.")
    )


_DESCRIBERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "integration.refused": _refused,
    "integration.recovered": _recovered,
    "integration.connect": _connected,
    "integration.update": _connected,
    "integration.disconnect": _disconnected,
    "integration.settings": _settings,
    "integration.refresh_failed": _refresh_failed,
}


def _pairs(details: dict[str, Any]) -> str:
    return "; ".join(
        f"{_title(str(key))}: {_value(value)}"
        for key, value in details.items()
        if value not in (None, "", [], {})
    )


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{_words(str(k))} {_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value)
    return str(value)


def _words(name: str) -> str:
    return name.replace("_", " ").strip()


def _title(name: str) -> str:
    text = _words(name)
    return text[:1].upper() + text[1:]
