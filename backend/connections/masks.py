"""The secret fields of a provider's credentials form: which they are (typed ``SecretStr``),
their masks (what may reach a browser: a last four at most), and reading a submitted form
without ever echoing a value back (blank or masked secrets keep their stored values).

Covered by tests/connections/test_service.py (connect, update and the tiles' masks).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from backend.connections import credentials
from backend.connections.catalog import Catalog, provider
from backend.platform.errors import InvalidInput, NotFound
from backend.security.crypto import CryptoError
from models import Integration

MASK = "••••"


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_secret(arg) for arg in get_args(annotation))
    return False


def secret_fields(model: type[BaseModel]) -> list[str]:
    """The fields of a credentials form that hold secrets (typed ``SecretStr``)."""
    return [name for name, info in model.model_fields.items() if _is_secret(info.annotation)]


def mask(value: str) -> str:
    """``••••1234``; short values show nothing, so a mask never gives most of a secret away."""
    value = value.strip()
    return MASK + value[-4:] if len(value) >= 12 else MASK


def masked_view(integration: Integration, catalog: Catalog | None = None) -> dict[str, str]:
    """The stored secret fields, masked (``{"secret_key": "••••1234"}``); {} when none or
    unreadable. Never the secret itself: this is what may reach a browser."""
    try:
        stored = credentials.unseal(integration)
    except CryptoError:
        return {}
    try:
        names = secret_fields(provider(integration.provider, catalog).credentials_model)
    except NotFound:
        names = []
    return {name: mask(str(stored[name])) for name in names if stored.get(name)}


def plain_values(model: BaseModel) -> dict[str, Any]:
    """A validated credentials model as JSON-able values, secrets unwrapped (to be sealed)."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value().strip()
        if value is None or value == "":
            continue
        out[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return out


def _field_label(model: type[BaseModel], name: str) -> str:
    info = model.model_fields.get(name)
    return (info.title if info and info.title else name.replace("_", " ")).capitalize()


def validated(model: type[BaseModel], data: Mapping[str, Any], what: str) -> BaseModel:
    """``model`` from a form, with pydantic's complaint turned into one naming the field (and
    never echoing the value: it may be a secret)."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        label = _field_label(model, name) if name else what
        raise InvalidInput(f"{label}: {first['msg']}.", field=name or None) from None


def merge_blank_secrets(
    submitted: Mapping[str, Any], existing: Mapping[str, Any], model: type[BaseModel]
) -> dict[str, Any]:
    """The form as submitted, with each secret left blank (or still showing its mask) taken
    from the stored credentials: updating one field must not mean re-typing every key."""
    merged = {k: v for k, v in submitted.items()}
    for name in secret_fields(model):
        value = merged.get(name)
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if (text is None or str(text).strip() == "" or str(text).startswith(MASK)) and (
            name in existing
        ):
            merged[name] = existing[name]
        elif text is not None and str(text).startswith(MASK):
            merged.pop(name)  # a mask is never a value
    return merged


def masked_secrets(model: type[BaseModel], plain: Mapping[str, Any]) -> dict[str, str]:
    """The secret fields of ``plain`` (a form's values, unsealed), masked."""
    return {name: mask(str(plain[name])) for name in secret_fields(model) if plain.get(name)}
