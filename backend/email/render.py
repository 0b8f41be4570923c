"""The repository's e-mail templates (``templates/``: ``<purpose>.subject.txt``,
``<purpose>.html``, ``<purpose>.txt``), rendered with Jinja2: HTML parts autoescaped, text
parts and subjects not (they are not HTML), an unknown variable an error rather than a blank.

Tested in tests/email/test_render.py.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

from backend.email.purposes import purpose

TEMPLATES = Path(__file__).resolve().parent / "templates"
SUBJECT_MAX = 200


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


@functools.cache
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        # By the template's name: .html escapes, .txt (text parts, subjects) does not.
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        auto_reload=False,
    )


@functools.cache
def _template(name: str) -> Template:
    """A template compiled once per process: Jinja's own cache takes a lock on every look-up,
    which a send job's thousand renders in several threads queue on."""
    return environment().get_template(name)


def render(
    purpose_name: str,
    context: dict[str, Any],
    *,
    unsubscribe_url: str = "",
    preferences_url: str = "",
) -> Rendered:
    """A purpose's subject, HTML and text parts with ``context`` (the message's variables);
    the footer carries the unsubscribe and preferences links when given."""
    purpose(purpose_name)  # an unknown purpose is refused by name, not as a missing file
    variables = {
        **context,
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
    }
    raw_subject = _template(f"{purpose_name}.subject.txt").render(variables)
    # A subject is one line: a newline in a variable must not start a header of its own.
    subject = " ".join(raw_subject.split())[:SUBJECT_MAX]
    variables["subject"] = subject
    html = _template(f"{purpose_name}.html").render(variables)
    text = _template(f"{purpose_name}.txt").render(variables)
    return Rendered(subject=subject, html=html, text=text.strip() + "\n")


def preview(purpose_name: str) -> Rendered:
    """The purpose's template with its sample data, as the console shows it."""
    sample = purpose(purpose_name).sample
    return render(
        purpose_name,
        sample,
        unsubscribe_url="https://example.com/u/preview",
        preferences_url="https://example.com/preferences/preview",
    )
