"""The Google Drive provider: service-account JSON checks, and "Test connection" through
google-api-python-client and google-auth against the sandbox (the JWT is really signed and
verified); plus the OAuth-token path the services use for consent-screen connections."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import backend.sandbox.google as google_emulator
from backend.integrations.base import InvalidCredentials
from backend.integrations.errors import ProviderAuthFailed
from backend.integrations.google_drive import (
    DRIVE_SCOPE,
    PROVIDER,
    GoogleDriveAdapter,
    GoogleDriveCredentials,
    GoogleDriveSettings,
)
from tests.integrations.support import OFFLINE, sandboxed
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox

CALLBACK = "http://localhost:8000/oauth/google/callback"


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[google_emulator])


def service_account(sandbox: RunningSandbox) -> dict[str, Any]:
    response = httpx.post(
        f"{sandbox.url}/google/_sandbox/service_accounts", json={"name": "hub"}, timeout=30
    )
    response.raise_for_status()
    info: dict[str, Any] = response.json()
    return info


def creds(value: dict[str, Any] | str) -> GoogleDriveCredentials:
    raw = value if isinstance(value, str) else json.dumps(value)
    return GoogleDriveCredentials(service_account_json=raw)  # type: ignore[arg-type]


def refusal(value: dict[str, Any] | str) -> InvalidCredentials:
    with pytest.raises(InvalidCredentials) as caught:
        PROVIDER.check_credentials(creds(value), OFFLINE)
    assert caught.value.field == "service_account_json"
    return caught.value


def test_malformed_json_is_refused() -> None:
    assert "not valid JSON" in str(refusal('{"type": "service_account", '))


def test_oauth_client_file_is_refused_as_not_a_key() -> None:
    error = refusal({"installed": {"client_id": "x.apps.googleusercontent.com"}})
    assert "OAuth client file, not a service account key" in str(error)


def test_wrong_type_is_refused() -> None:
    assert '"service_account"' in str(refusal({"type": "authorized_user", "client_id": "x"}))


def test_missing_fields_are_named() -> None:
    error = refusal({"type": "service_account", "project_id": "p"})
    assert "missing client_email and private_key" in str(error)
    assert "missing private_key" in str(
        refusal({"type": "service_account", "client_email": "a@p.iam.gserviceaccount.com"})
    )


def test_unreadable_private_key_is_refused_without_quoting_it() -> None:
    error = refusal(
        {
            "type": "service_account",
            "client_email": "a@p.iam.gserviceaccount.com",
            "private_key": "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )
    assert "private_key in this key file cannot be read" in str(error)
    assert "not-a-key" not in str(error)


def test_connection_with_a_sandbox_service_account(sandbox: RunningSandbox) -> None:
    info = service_account(sandbox)
    PROVIDER.check_credentials(creds(info), sandboxed(sandbox))
    result = PROVIDER.test_connection(creds(info), GoogleDriveSettings(), sandboxed(sandbox))
    assert result.ok, result.message
    assert result.message == f"Connected to Google Drive as {info['client_email']}."


def test_the_key_files_own_token_uri_is_not_trusted(sandbox: RunningSandbox) -> None:
    # A pasted file pointing the signed assertion elsewhere: the sandbox's token URI is used.
    info = service_account(sandbox) | {"token_uri": "http://127.0.0.1:9/token"}
    result = PROVIDER.test_connection(creds(info), GoogleDriveSettings(), sandboxed(sandbox))
    assert result.ok, result.message


def test_key_google_does_not_know_reports_googles_answer(sandbox: RunningSandbox) -> None:
    # A well-formed key that was never registered (or was deleted) for this account.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = service_account(sandbox) | {"private_key": pem, "private_key_id": "0" * 40}
    result = PROVIDER.test_connection(creds(info), GoogleDriveSettings(), sandboxed(sandbox))
    assert not result.ok
    assert "Google refused the credentials" in result.message
    assert "Invalid JWT Signature" in result.message
    assert "PRIVATE KEY" not in result.message


def oauth_tokens(sandbox: RunningSandbox, scope: str) -> dict[str, str]:
    """Consent as a person would (the sandbox's consent form), then exchange the code."""
    client = httpx.post(
        f"{sandbox.url}/google/_sandbox/oauth_clients",
        json={"name": "Integrations Hub", "redirect_uris": [CALLBACK]},
        timeout=10,
    ).json()
    consent = httpx.post(
        f"{sandbox.url}/google/_pages/o/oauth2/consent",
        data={
            "client_id": client["client_id"],
            "redirect_uri": CALLBACK,
            "response_type": "code",
            "scope": scope,
            "access_type": "offline",
            "decision": "allow",
            "email": "owner@example.com",
        },
        timeout=10,
    )
    assert consent.status_code == 302
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(consent.headers["location"]).query))
    token = httpx.post(
        client["token_uri"],
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": CALLBACK,
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
        },
        timeout=10,
    ).json()
    return {
        "refresh_token": token["refresh_token"],
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }


def test_oauth_tokens_build_a_working_drive_client(sandbox: RunningSandbox) -> None:
    tokens = oauth_tokens(sandbox, DRIVE_SCOPE)
    # Only the refresh token is stored long-term: google-auth fetches an access token itself.
    adapter = GoogleDriveAdapter.from_oauth(access_token=None, **tokens, context=sandboxed(sandbox))
    assert adapter.probe() == {}


def test_oauth_token_without_drive_scope_says_so(sandbox: RunningSandbox) -> None:
    tokens = oauth_tokens(sandbox, "https://www.googleapis.com/auth/userinfo.email")
    adapter = GoogleDriveAdapter.from_oauth(access_token=None, **tokens, context=sandboxed(sandbox))
    with pytest.raises(ProviderAuthFailed) as caught:
        adapter.probe()
    assert "insufficient authentication scopes" in str(caught.value)
    assert DRIVE_SCOPE in str(caught.value)
