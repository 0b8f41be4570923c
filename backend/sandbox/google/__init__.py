"""Google: OAuth 2.0 token endpoint, consent page and the slice of Drive v3 the product uses.

Reached through the official clients with only URLs changed: a service-account JSON from
``POST /google/_sandbox/service_accounts`` carries ``token_uri`` = this emulator, so
``google.oauth2.service_account.Credentials`` signs its RS256 JWT locally and the token endpoint
verifies it against the registered public key; the Drive discovery document gets
``rootUrl = {sandbox}/google/``. People use ``/google/_pages/o/oauth2/auth`` to consent.

Drive keeps Google's access model in small: a file is visible to its owner and to whoever it
(or a folder above it) is shared with, and each principal has a "My Drive" root folder.

The parts: ``errors`` (Google's two error shapes), ``state`` (the store section and shared
helpers), ``oauth`` (token grants, service-account keys), ``drive`` (files and sharing),
``query`` (Drive's search language and ``fields``), ``pages`` (consent, Drive and control-page
tables) and ``routes`` (the HTTP surface). This package is what backend/sandbox/app.py mounts.
"""

from __future__ import annotations

from backend.sandbox.google.errors import render_error
from backend.sandbox.google.pages import summary
from backend.sandbox.google.routes import build_router
from backend.sandbox.google.state import NAME, PREFIX, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

__all__ = [
    "NAME",
    "PREFIX",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "build_router",
    "render_error",
    "summary",
]
