"""Google Drive: every call the product makes to it, through google-api-python-client and
google-auth (``adapter``); Google's OAuth endpoints for "Connect with Google" (``oauth``); and the
provider's declaration (``PROVIDER``: key form, root folder setting, connection test, ``provider``).

Importers use ``backend.integrations.google_drive``; the modules are how it reads, not an API.
"""

from __future__ import annotations

from backend.integrations.google_drive.adapter import (
    GoogleDriveAdapter,
    parse_service_account,
    service_account_credentials,
)
from backend.integrations.google_drive.oauth import (
    DRIVE_SCOPE,
    GOOGLE_AUTH_URI,
    GOOGLE_REVOKE_URI,
    GOOGLE_TOKEN_URI,
    TIMEOUT_SECONDS,
    OAuthClient,
    OAuthTokens,
    auth_uri,
    authorize_url,
    exchange_code,
    refresh,
    revoke,
    revoke_uri,
    token_uri,
    tokens_of,
    user_credentials,
)
from backend.integrations.google_drive.provider import (
    PROVIDER,
    GoogleDriveCredentials,
    GoogleDriveProvider,
    GoogleDriveSettings,
)

__all__ = [
    "DRIVE_SCOPE",
    "GOOGLE_AUTH_URI",
    "GOOGLE_REVOKE_URI",
    "GOOGLE_TOKEN_URI",
    "PROVIDER",
    "TIMEOUT_SECONDS",
    "GoogleDriveAdapter",
    "GoogleDriveCredentials",
    "GoogleDriveProvider",
    "GoogleDriveSettings",
    "OAuthClient",
    "OAuthTokens",
    "auth_uri",
    "authorize_url",
    "exchange_code",
    "parse_service_account",
    "refresh",
    "revoke",
    "revoke_uri",
    "service_account_credentials",
    "token_uri",
    "tokens_of",
    "user_credentials",
]
