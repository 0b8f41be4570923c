"""The Zoho Books provider: credential checks, and "Test connection" (refresh-token grant, then
the organizations list) against the sandbox's Zoho emulator."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import backend.sandbox.zoho as zoho_emulator
from backend.integrations.base import EmptyModel, InvalidCredentials
from backend.integrations.zoho_books import PROVIDER, Region, ZohoBooksCredentials
from tests.integrations.support import OFFLINE, sandboxed
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[zoho_emulator])


def new_client(sandbox: RunningSandbox, *orgs: str) -> dict[str, Any]:
    body = {"organizations": list(orgs)} if orgs else {}
    response = httpx.post(f"{sandbox.url}/zoho/_sandbox/clients", json=body, timeout=10)
    response.raise_for_status()
    client: dict[str, Any] = response.json()
    return client


def creds(client: dict[str, Any], **changes: str) -> ZohoBooksCredentials:
    values: dict[str, Any] = {
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
        "refresh_token": client["refresh_token"],
        "organization_id": client["organization_id"],
        "region": Region.EU,
    }
    return ZohoBooksCredentials(**(values | changes))


FAKE = {
    "client_id": "1000.ABCDEF",
    "client_secret": "abc",
    "refresh_token": "1000.abc123.def456",
    "organization_id": "60001234",
}


def test_connection_finds_the_organization(sandbox: RunningSandbox) -> None:
    client = new_client(sandbox, "Lakeside Events", "Lakeside Rentals")
    PROVIDER.check_credentials(creds(client), sandboxed(sandbox))
    result = PROVIDER.test_connection(creds(client), EmptyModel(), sandboxed(sandbox))
    assert result.ok, result.message
    assert result.message == "Connected to Zoho Books organization Lakeside Events."
    assert result.account["organization_id"] == client["organization_id"]


def test_organization_the_account_does_not_have_is_not_ok(sandbox: RunningSandbox) -> None:
    client = new_client(sandbox, "Lakeside Events")
    result = PROVIDER.test_connection(
        creds(client, organization_id="999"), EmptyModel(), sandboxed(sandbox)
    )
    assert not result.ok
    assert "no organization 999" in result.message
    assert f"Lakeside Events ({client['organization_id']})" in result.message


def test_revoked_refresh_token_reports_zohos_error(sandbox: RunningSandbox) -> None:
    client = new_client(sandbox)
    httpx.post(
        f"{sandbox.url}/zoho/_sandbox/revoke",
        json={"refresh_token": client["refresh_token"]},
        timeout=10,
    ).raise_for_status()
    result = PROVIDER.test_connection(creds(client), EmptyModel(), sandboxed(sandbox))
    assert not result.ok
    assert result.message.startswith("Zoho says invalid_code: the refresh token is wrong or")
    assert client["refresh_token"] not in result.message


def test_wrong_client_secret_reports_invalid_client(sandbox: RunningSandbox) -> None:
    client = new_client(sandbox)
    result = PROVIDER.test_connection(
        creds(client, client_secret="wrong"), EmptyModel(), sandboxed(sandbox)
    )
    assert not result.ok
    assert result.message.startswith("Zoho says invalid_client: ")
    assert "api-console.zoho.eu" in result.message


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("client_id", "ABCDEF", "starts with 1000."),
        ("refresh_token", "1000.abc123", "exchange it for a refresh token"),
        ("organization_id", "Lakeside", "is a number"),
        ("client_secret", " ", "Client Secret"),
    ],
)
def test_malformed_fields_are_refused(field: str, value: str, says: str) -> None:
    with pytest.raises(InvalidCredentials) as caught:
        PROVIDER.check_credentials(ZohoBooksCredentials(**(FAKE | {field: value})), OFFLINE)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert says in str(caught.value)
