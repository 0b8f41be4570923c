"""Keeping OAuth connections alive: Google access tokens last an hour and are renewed ahead."""

from __future__ import annotations

from backend.connections import google_tokens
from backend.db import get_engine
from backend.platform.periodic import periodic


@periodic(
    id="google-token-refresh",
    seconds=120,
    description="Renew Google Drive access tokens expiring within 10 minutes; a refused "
    "renewal turns the integration Error (Reconnect).",
)
def refresh_google_tokens() -> None:
    google_tokens.refresh_due(get_engine())
