"""The sidecar's pages for people following a link from an e-mail (``/x/``, ``/preferences/``):
Jinja2 templates in ``templates/``, autoescaped, on the lead form's page layout.

Tested in tests/api/test_links.py and tests/api/test_preferences.py (the pages they answer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def page(
    template: str, status: int = 200, headers: dict[str, str] | None = None, **values: Any
) -> HTMLResponse:
    return HTMLResponse(
        _templates.get_template(template).render(**values), status_code=status, headers=headers
    )


def form_fields(body: bytes) -> dict[str, str]:
    """A form-encoded body's fields (the last value of each); an undecodable body has none."""
    try:
        pairs = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    return {key: values[-1] for key, values in pairs.items()}
