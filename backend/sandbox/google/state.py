"""The emulator's state in the sandbox store, and the request and encoding helpers every part
shares (form and JSON bodies, RFC 3339 times, base64url).

Tested in tests/sandbox/test_google.py and tests/integrations/test_google_drive.py (through
google-api-python-client).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from backend.sandbox.context import SandboxContext
from backend.sandbox.google.errors import GoogleError, OAuthError

NAME = "google"
PREFIX = "/google"

FOLDER = "application/vnd.google-apps.folder"
DEFAULT_TTL = 3599
# The hub's own OAuth client, there from the start like Stripe's platform account: the sandbox
# defaults of HUB_GOOGLE_CLIENT_ID / HUB_GOOGLE_CLIENT_SECRET. Any redirect URI is accepted.
SANDBOX_CLIENT_ID = "100000000000-sandboxintegrationshub0000000000.apps.googleusercontent.com"
SANDBOX_CLIENT_SECRET = "GOCSPX-SandboxIntegrationsHub000000000"  # noqa: S105 - sandbox only


_KEYS = (
    "service_accounts",
    "oauth_clients",
    "codes",
    "access_tokens",
    "refresh_tokens",
    "files",
    "roots",
    "settings",
    "notifications",
)


@contextmanager
def open_state(ctx: SandboxContext) -> Iterator[dict[str, Any]]:
    with ctx.store.section(NAME) as state:
        for key in _KEYS:
            state.setdefault(key, [] if key == "notifications" else {})
        state["oauth_clients"].setdefault(
            SANDBOX_CLIENT_ID,
            {
                "name": "Integrations Hub (sandbox)",
                "client_secret": SANDBOX_CLIENT_SECRET,
                "redirect_uris": [],
            },
        )
        yield state


def rfc3339(at: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def random_digits(n: int) -> str:
    return str(secrets.randbelow(9) + 1) + "".join(str(secrets.randbelow(10)) for _ in range(n - 1))


def token_uri(ctx: SandboxContext) -> str:
    return f"{ctx.public_url}{PREFIX}/oauth2/token"


async def read_form(request: Request) -> dict[str, str]:
    """Form fields (or a JSON object, which Google's token endpoint also takes)."""
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise OAuthError(400, "invalid_request", "Invalid JSON payload received.") from None
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise GoogleError(400, "Invalid JSON payload received.", "parseError") from None
    if not isinstance(data, dict):
        raise GoogleError(400, "Invalid JSON payload received.", "parseError")
    return data


def b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
