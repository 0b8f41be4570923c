"""A provider's credentials or settings model (pydantic) as the fields of a form, and a
submitted form back as the values to validate against that model.

Pure: no database, no settings, no Reflex. The console's Manage page draws its key and settings
forms from ``form_fields`` and sends what was typed through ``form_values``; the service then
validates it with the model itself (and explains a bad number or a missing key).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, SecretStr

Kind = Literal["secret", "number", "bool", "list", "text"]


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    label: str
    kind: Kind
    help: str
    value: str  # what the input starts with; never a secret's value
    required: bool


def field_kind(annotation: Any) -> Kind:
    """The input a field's type calls for. ``X | None`` is read as ``X``."""
    target = annotation
    # Only a union is unwrapped: ``list[str]``'s arguments are its items, not alternatives.
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        target = inner[0] if inner else annotation
    if target is SecretStr:
        return "secret"
    if target is int:
        return "number"
    if target is bool:
        return "bool"
    if typing.get_origin(target) is list:
        return "list"
    return "text"


def form_fields(model: type[BaseModel], values: Mapping[str, Any]) -> list[FormField]:
    """The form of ``model``, in its field order, filled from ``values`` (the stored settings;
    secrets are never filled in: the page shows their mask instead)."""
    fields = []
    for name, info in model.model_fields.items():
        kind = field_kind(info.annotation)
        value = values.get(name)
        if kind == "list" and isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        fields.append(
            FormField(
                name=name,
                label=info.title or name.replace("_", " ").capitalize(),
                kind=kind,
                help=info.description or "",
                value="" if value is None or kind == "secret" else str(value),
                required=info.is_required(),
            )
        )
    return fields


def form_values(model: type[BaseModel], form: Mapping[str, Any]) -> dict[str, Any]:
    """What was submitted for ``model``'s fields, as the model reads it: a list from
    comma-separated text, a checkbox as a bool; fields not in the form are left out, and so is a
    secret left blank (the service keeps the stored one)."""
    out: dict[str, Any] = {}
    for field in form_fields(model, {}):
        raw = form.get(field.name)
        if raw is None:
            continue
        text = str(raw).strip()
        if field.kind == "list":
            out[field.name] = [part.strip() for part in text.split(",") if part.strip()]
        elif field.kind == "bool":
            out[field.name] = text.lower() in ("on", "true", "1", "yes")
        elif field.kind == "number":
            out[field.name] = text  # pydantic converts, and explains a bad number
        elif text or field.kind != "secret":
            out[field.name] = text
    return out
