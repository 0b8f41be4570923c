"""The Messenger provider: "Test connection" (GET /v21.0/me on the Graph API) against the
sandbox, and the Page id check."""

from __future__ import annotations

import httpx
import pytest

import backend.sandbox.messenger as messenger_emulator
from backend.integrations.base import InvalidCredentials
from backend.integrations.errors import ProviderAuthFailed, ProviderError, ProviderRejected
from backend.integrations.messenger import PROVIDER, MessengerCredentials, MessengerSettings
from tests.integrations.support import OFFLINE, sandboxed
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[messenger_emulator])


def new_page(sandbox: RunningSandbox, name: str = "Lakeside Events") -> dict[str, str]:
    response = httpx.post(f"{sandbox.url}/graph/_sandbox/pages", json={"name": name}, timeout=10)
    response.raise_for_status()
    page: dict[str, str] = response.json()
    return page


def creds(token: str) -> MessengerCredentials:
    return MessengerCredentials(page_access_token=token)  # type: ignore[arg-type]


def test_connection_names_the_page(sandbox: RunningSandbox) -> None:
    page = new_page(sandbox)
    token = creds(page["page_access_token"])
    PROVIDER.check_credentials(token, sandboxed(sandbox))
    result = PROVIDER.test_connection(
        token, MessengerSettings(page_id=page["page_id"]), sandboxed(sandbox)
    )
    assert result.ok, result.message
    assert result.message == "Connected to the Facebook Page Lakeside Events."
    assert result.account == {"id": page["page_id"], "name": "Lakeside Events"}


def test_invalid_token_reports_facebooks_message(sandbox: RunningSandbox) -> None:
    token = "EAAG" + "x" * 60
    result = PROVIDER.test_connection(creds(token), MessengerSettings(), sandboxed(sandbox))
    assert not result.ok
    assert "Facebook says: Invalid OAuth access token - Cannot parse access token" in (
        result.message
    )
    assert token not in result.message


def test_token_of_another_page_is_not_ok(sandbox: RunningSandbox) -> None:
    page = new_page(sandbox, "Other Page")
    result = PROVIDER.test_connection(
        creds(page["page_access_token"]), MessengerSettings(page_id="123456789"), sandboxed(sandbox)
    )
    assert not result.ok
    assert f"belongs to the Page Other Page ({page['page_id']}), not to Page 123456789" in (
        result.message
    )


def test_short_token_and_non_numeric_page_id_are_refused() -> None:
    with pytest.raises(InvalidCredentials) as caught:
        PROVIDER.check_credentials(creds("EAA"), OFFLINE)
    assert caught.value.field == "page_access_token"
    with pytest.raises(InvalidCredentials) as caught:
        PROVIDER.check_settings(MessengerSettings(page_id="lakeside"), OFFLINE)  # type: ignore[attr-defined]
    assert caught.value.field == "page_id"


def test_a_recipient_the_page_cannot_reach_is_a_rejected_send_not_a_refused_token(
    sandbox: RunningSandbox,
) -> None:
    """Graph answers "(#100) … OAuthException" for a buyer with no such id: that is about one
    recipient, so it must not read as a refused token (which turns the integration Error)."""
    page = new_page(sandbox)
    adapter = PROVIDER.adapter(creds(page["page_access_token"]), sandboxed(sandbox))  # type: ignore[attr-defined]
    with pytest.raises(ProviderError) as failed:
        adapter.send_text("not-a-psid", "Your invoice is ready")
    assert not isinstance(failed.value, ProviderAuthFailed)
    assert isinstance(failed.value, ProviderRejected)
    # A token Facebook refuses still is one.
    bad = PROVIDER.adapter(creds("EAAG" + "x" * 60), sandboxed(sandbox))  # type: ignore[attr-defined]
    with pytest.raises(ProviderAuthFailed):
        bad.send_text("123", "Your invoice is ready")
