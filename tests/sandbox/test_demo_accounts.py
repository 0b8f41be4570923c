"""Every demo workspace has its own sandbox accounts at every provider it may connect, listed
on the control page; each listed credential passes the product's own "Test connection"."""

from __future__ import annotations

import html
import json

import httpx
from pydantic import BaseModel, SecretStr

from backend.integrations import google_drive, messenger, sendgrid, slack, stripe, zoho_books
from backend.integrations.base import Provider
from backend.sandbox.demo_accounts import DEMO_WORKSPACES, DemoWorkspace
from tests.integrations.support import sandboxed
from tests.support.sandbox_fixtures import RunningSandbox


def _credentials(sandbox: RunningSandbox, demo: DemoWorkspace) -> list[tuple[Provider, BaseModel]]:
    service_account = httpx.get(
        f"{sandbox.url}/google/_sandbox/demo/{demo.slug}/service_account.json", timeout=10
    )
    service_account.raise_for_status()
    return [
        (stripe.PROVIDER, stripe.StripeCredentials(secret_key=SecretStr(demo.stripe_secret_key))),
        (
            stripe.PROVIDER,
            stripe.StripeCredentials(secret_key=SecretStr(demo.stripe_restricted_key)),
        ),
        (sendgrid.PROVIDER, sendgrid.SendGridCredentials(api_key=SecretStr(demo.sendgrid_api_key))),
        (slack.PROVIDER, slack.SlackCredentials(bot_token=SecretStr(demo.slack_bot_token))),
        (
            messenger.PROVIDER,
            messenger.MessengerCredentials(page_access_token=SecretStr(demo.messenger_page_token)),
        ),
        (
            zoho_books.PROVIDER,
            zoho_books.ZohoBooksCredentials(
                client_id=demo.zoho_client_id,
                client_secret=SecretStr(demo.zoho_client_secret),
                refresh_token=SecretStr(demo.zoho_refresh_token),
                organization_id=demo.zoho_organization_id,
            ),
        ),
        (
            google_drive.PROVIDER,
            google_drive.GoogleDriveCredentials(
                service_account_json=SecretStr(service_account.text)
            ),
        ),
    ]


def test_the_control_page_lists_each_demo_workspaces_own_credentials(
    sandbox: RunningSandbox,
) -> None:
    page = httpx.get(sandbox.url, timeout=10).text
    assert "Demo workspaces: their own sandbox accounts" in page
    assert "Sandbox-only test credentials, valid nowhere else." in page
    for demo in DEMO_WORKSPACES:
        assert html.escape(demo.name) in page
        for value in (
            demo.stripe_secret_key,
            demo.stripe_restricted_key,
            demo.stripe_read_only_key,
            demo.stripe_webhook_secret,
            demo.sendgrid_api_key,
            demo.slack_bot_token,
            demo.messenger_page_token,
            demo.zoho_client_id,
            demo.zoho_client_secret,
            demo.zoho_refresh_token,
        ):
            assert f"<code>{html.escape(value)}</code>" in page, value
        assert f"/google/_sandbox/demo/{demo.slug}/service_account.json" in page
    # The two businesses share no credential.
    first, second = (
        {v for k, v in vars_of(d).items() if k not in ("slug", "email")} for d in DEMO_WORKSPACES
    )
    assert not first & second


def vars_of(demo: DemoWorkspace) -> dict[str, str]:
    return {name: getattr(demo, name) for name in demo.__slots__}


def test_every_listed_credential_passes_the_products_connection_test(
    sandbox: RunningSandbox,
) -> None:
    context = sandboxed(sandbox)
    for demo in DEMO_WORKSPACES:
        for provider, creds in _credentials(sandbox, demo):
            provider.check_credentials(creds, context)
            settings = provider.settings_model()
            result = provider.test_connection(creds, settings, context)
            assert result.ok, (demo.slug, provider.info.slug, result.message)
        read_only = stripe.StripeCredentials(secret_key=SecretStr(demo.stripe_read_only_key))
        refused = stripe.PROVIDER.test_connection(read_only, stripe.StripeSettings(), context)
        assert not refused.ok and "may not write" in refused.message


def test_the_demo_service_account_file_is_the_same_at_every_download(
    sandbox: RunningSandbox,
) -> None:
    url = f"{sandbox.url}/google/_sandbox/demo/{DEMO_WORKSPACES[1].slug}/service_account.json"
    first, again = (json.loads(httpx.get(url, timeout=10).text) for _ in range(2))
    assert first == again and first["type"] == "service_account"
    assert first["token_uri"].startswith(sandbox.url)


def test_each_demo_page_can_message_a_buyer_on_messenger(sandbox: RunningSandbox) -> None:
    for demo in DEMO_WORKSPACES:
        page = messenger.MessengerProvider().adapter(
            messenger.MessengerCredentials(page_access_token=SecretStr(demo.messenger_page_token)),
            sandboxed(sandbox),
        )
        assert page.me()["id"] == demo.messenger_page_id
        # A buyer of the demo data who wrote to the Page (backend/services/demo.py).
        page.send_text(
            "7100200301", "Your invoice: https://example.test/pay", messaging_type="UPDATE"
        )
    sent = sandbox.ctx.store.read("messenger")["messages"]
    assert [m["page_id"] for m in sent] == [d.messenger_page_id for d in DEMO_WORKSPACES]
