"""What the SendGrid sandbox accepts on POST /v3/mail/send: SendGrid's own published request schema
(``../shared/reference/sendgrid-mail-v3.openapi.json``) plus the few rules its API enforces that the
schema cannot say, reported as SendGrid reports them (a message and a dotted field path).

Tested in tests/sandbox/test_sendgrid.py (requests checked against SendGrid's published OpenAPI
description)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator

REFERENCE = (
    Path(__file__).resolve().parents[3].parent
    / "shared"
    / "reference"
    / "sendgrid-mail-v3.openapi.json"
)

# (message, field) as SendGrid puts them in {"errors": [{"message", "field", "help"}]}.
Problem = tuple[str, str | None]
MAX_PROBLEMS = 20

_MESSAGES = {
    "required": "The {field} field is required.",
    "type": "The {field} field must be of type {value}.",
    "maxItems": "The {field} field may hold at most {value} items.",
    "minItems": "The {field} field must hold at least {value} items.",
    "maxLength": "The {field} field may be at most {value} characters long.",
    "minLength": "The {field} field must be at least {value} characters long.",
    "maxProperties": "The {field} field may hold at most {value} properties.",
    "uniqueItems": "The {field} field must not repeat an item.",
    "enum": "The {field} field must be one of: {value}.",
    "format": "The {field} field must be a valid {value}.",
}


@functools.cache
def _schema() -> dict[str, Any]:
    if not REFERENCE.is_file():
        raise RuntimeError(
            f"SendGrid's OpenAPI description is missing: expected {REFERENCE}. The SendGrid "
            "sandbox validates mail sends against it; it ships in the project's shared/reference/."
        )
    document = json.loads(REFERENCE.read_text())
    media = document["components"]["requestBodies"]["PostMailSend"]["content"]
    body: dict[str, Any] = media["application/json"]["schema"]
    # The body's $refs point at "#/components/..."; carrying the document's components in the root
    # lets them resolve without a resolver (OpenAPI 3.1 schemas are JSON Schema 2020-12).
    schema = {**body, "components": document["components"]}
    # The description types message-level custom_args as a string, but the live API and SendGrid's
    # own SDK (Mail.get()) send an object of strings; accept both so the real SDK is not rejected.
    schema["properties"] = {
        **body["properties"],
        "custom_args": {"type": ["object", "string"], "additionalProperties": {"type": "string"}},
    }
    Draft202012Validator.check_schema(schema)
    return schema


@functools.cache
def validator() -> Draft202012Validator:
    """The request-body schema of POST /v3/mail/send, read once; raises if the file is missing."""
    return Draft202012Validator(_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


@functools.cache
def _quick() -> jsonschema_rs.Draft202012Validator:
    """The same schema, compiled by jsonschema-rs: a send of 1,000 personalizations is checked
    in milliseconds, not the second jsonschema takes. Only its "valid" is taken as is; a body it
    refuses is looked at again by ``validator()``, whose errors are the ones reported."""
    return jsonschema_rs.Draft202012Validator(_schema(), validate_formats=True)


def problems(payload: Any) -> list[Problem]:
    """Everything wrong with a mail/send body; empty when SendGrid would accept it."""
    if not isinstance(payload, dict):
        return [("The request body must be a JSON object.", None)]
    found: list[Problem] = [] if _quick().is_valid(payload) else _schema_problems(payload)
    if not found:
        found = _api_rules(payload)
    # Newer jsonschema reports each missing property of a "required" once per property: dedupe.
    # Shallow problems first, and only the first few, as SendGrid never lists a thousand.
    unique = list(dict.fromkeys(found))
    unique.sort(key=lambda problem: -1 if problem[1] is None else problem[1].count("."))
    return unique[:MAX_PROBLEMS]


def _schema_problems(payload: dict[str, Any]) -> list[Problem]:
    """jsonschema's errors, in SendGrid's words."""
    found: list[Problem] = []
    for error in validator().iter_errors(payload):
        path = [str(part) for part in error.absolute_path]
        if error.validator == "required" and isinstance(error.instance, dict):
            # jsonschema points at the object; SendGrid names the missing field itself.
            for name in error.validator_value:
                if name not in error.instance:
                    missing = ".".join([*path, name])
                    found.append((_MESSAGES["required"].format(field=missing), missing))
            continue
        field = ".".join(path) or None
        value = error.validator_value
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        # Never echo the instance (jsonschema's own message would print all 1,001 items).
        template = _MESSAGES.get(str(error.validator), "The {field} field is invalid.")
        found.append((template.format(field=field or "request body", value=value), field))
    return found


_NO_PERSONALIZATION = (
    "The personalizations field is required and must have at least one personalization."
)
_NO_TO = (
    "The to array is required for all personalization objects, and must have at least one email "
    "object with a valid email address."
)
_NO_CONTENT = (
    "Unless a valid template_id is provided, the content parameter is required. "
    "There must be at least one defined content block."
)
_NO_SUBJECT = (
    "The subject is required. You can get around this requirement if you use a template "
    "with a subject defined or if every personalization has a subject defined."
)


def _api_rules(payload: dict[str, Any]) -> list[Problem]:
    """Rules the live API enforces beyond the schema, worded as SendGrid words them."""
    found: list[Problem] = []
    personalizations: list[dict[str, Any]] = payload["personalizations"]
    if not personalizations:
        found.append((_NO_PERSONALIZATION, "personalizations"))
    for index, personalization in enumerate(personalizations):
        if not personalization["to"]:
            found.append((_NO_TO, f"personalizations.{index}.to"))
    has_template = bool(payload.get("template_id"))
    if not has_template and not payload.get("content"):
        found.append((_NO_CONTENT, "content"))
    every_subject = personalizations and all(p.get("subject") for p in personalizations)
    if not (has_template or payload.get("subject") or every_subject):
        found.append((_NO_SUBJECT, "subject"))
    return found
