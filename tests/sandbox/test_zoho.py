"""The Zoho emulator as Zoho behaves: grant errors come back with HTTP 200, the Books API wants
``Zoho-oauthtoken`` and answers ``{"code", "message"}``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import backend.sandbox.zoho as zoho_emulator
from backend.sandbox.app import PROVIDER_MODULES
from tests.sandbox.conftest import MakeSandbox, RunningSandbox


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[zoho_emulator])


def client(sandbox: RunningSandbox) -> dict[str, Any]:
    made: dict[str, Any] = httpx.post(f"{sandbox.url}/zoho/_sandbox/clients", timeout=10).json()
    return made


def grant(sandbox: RunningSandbox, **params: str) -> httpx.Response:
    # In the query string, as Zoho's own examples send it.
    return httpx.post(
        f"{sandbox.url}/zoho/oauth/v2/token",
        params={"grant_type": "refresh_token"} | params,
        timeout=10,
    )


def test_zoho_is_a_default_emulator() -> None:
    assert "zoho" in PROVIDER_MODULES


def test_refresh_grant_then_organizations(sandbox: RunningSandbox) -> None:
    made = client(sandbox)
    answer = grant(
        sandbox,
        client_id=made["client_id"],
        client_secret=made["client_secret"],
        refresh_token=made["refresh_token"],
    ).json()
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3600
    orgs = httpx.get(
        f"{sandbox.url}/zoho/books/v3/organizations",
        headers={"Authorization": f"Zoho-oauthtoken {answer['access_token']}"},
        timeout=10,
    )
    assert orgs.status_code == 200
    assert [o["organization_id"] for o in orgs.json()["organizations"]] == [made["organization_id"]]


def test_grant_errors_are_http_200(sandbox: RunningSandbox) -> None:
    made = client(sandbox)
    bad_client = grant(
        sandbox, client_id=made["client_id"], client_secret="x", refresh_token="1000.a.b"
    )
    assert (bad_client.status_code, bad_client.json()) == (200, {"error": "invalid_client"})
    bad_token = grant(
        sandbox,
        client_id=made["client_id"],
        client_secret=made["client_secret"],
        refresh_token="1000.a.b",
    )
    assert (bad_token.status_code, bad_token.json()) == (200, {"error": "invalid_code"})


def test_organizations_without_a_valid_token_is_401(sandbox: RunningSandbox) -> None:
    for header in ("Zoho-oauthtoken 1000.nope.nope", "Bearer whatever"):
        answer = httpx.get(
            f"{sandbox.url}/zoho/books/v3/organizations",
            headers={"Authorization": header},
            timeout=10,
        )
        assert answer.status_code == 401
        assert answer.json()["code"] == 57
