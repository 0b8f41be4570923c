"""The demo workspaces' own accounts at every provider the sandbox emulates: one Stripe account
per business (secret, publishable and restricted keys, a webhook signing secret), a SendGrid
key, a Slack bot, a Facebook Page for Messenger, a Zoho Books self client and a Google service
account. Fixed values, so that `make run`, the docs and the browser tests can name them; they
are test credentials of this offline sandbox and valid nowhere else.

Each emulator seeds its share at start-up (``seed`` in its module); the control page lists them
per workspace (``section``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from backend.sandbox.context import SandboxContext, Section


def _padded(prefix: str, length: int = 56) -> str:
    """A key of Stripe's usual length, readable in the control page."""
    return prefix + "0" * (length - len(prefix))


@dataclass(frozen=True, slots=True)
class DemoWorkspace:
    slug: str  # the product's workspace slug (backend/services/demo.py)
    name: str
    email: str
    stripe_account: str
    stripe_secret_key: str
    stripe_publishable_key: str
    # Exactly the permissions Integrations Hub needs (Customers, Invoices, Webhook Endpoints:
    # Write; Account: Read), and one that may only read: "Test and save" refuses it.
    stripe_restricted_key: str
    stripe_read_only_key: str
    # Of the account's webhook endpoint pointing at the sidecar's /webhooks/stripe/<slug>.
    stripe_webhook_secret: str
    sendgrid_api_key: str
    # The product workspace's Inbound Parse secret, which its demo seed sets too
    # (backend/demo/seed.py): replies from the mailbox reach the demo's sidecar.
    inbound_parse_token: str
    slack_team: str
    slack_team_id: str
    slack_bot_token: str
    messenger_page_id: str
    messenger_page_name: str
    messenger_page_token: str
    zoho_client_id: str
    zoho_client_secret: str
    zoho_refresh_token: str
    zoho_organization_id: str
    google_project: str


LAKESIDE = DemoWorkspace(
    slug="lakeside-live",
    name="Lakeside Live Boutique",
    email="owner@lakeside.example",
    stripe_account="acct_1SandboxLakeside0",
    stripe_secret_key=_padded("sk_test_51SandboxLakeside"),
    stripe_publishable_key=_padded("pk_test_51SandboxLakeside"),
    stripe_restricted_key=_padded("rk_test_51SandboxLakesideHubAccess"),
    stripe_read_only_key=_padded("rk_test_51SandboxLakesideReadOnly"),
    stripe_webhook_secret=_padded("whsec_SandboxLakesideWebhookSecret", 43),
    sendgrid_api_key="SG.sandbox-lakeside.OfflineLakesideKeyForTheHubSandbox000000",
    inbound_parse_token="sandbox-lakeside-inbound-parse-0000000000000",  # noqa: S106
    slack_team="Lakeside Live Boutique",
    slack_team_id="T0LAKESIDE0",
    slack_bot_token="xoxb-100000000001-200000000001-SandboxLakesideBotToken0",  # noqa: S106
    messenger_page_id="100000000000001",
    messenger_page_name="Lakeside Live Boutique",
    messenger_page_token="EAAG" + _padded("SandboxLakesidePageAccessToken", 120),
    zoho_client_id="1000." + _padded("SANDBOXLAKESIDE", 30),
    zoho_client_secret=_padded("5a9d1a4e51de", 42),
    # Zoho's tokens are hex: "1a4e51de" reads "lakeside", "3ee1" "reel".
    zoho_refresh_token="1000." + _padded("1a4e51de", 32) + "." + _padded("de70", 32),
    zoho_organization_id="700000001",
    google_project="lakeside-live-demo",
)

REEL_MOMENTS = DemoWorkspace(
    slug="reel-moments",
    name="Reel Moments Studio",
    email="owner@reelmoments.example",
    stripe_account="acct_1SandboxReelMoments0",
    stripe_secret_key=_padded("sk_test_51SandboxReelMoments"),
    stripe_publishable_key=_padded("pk_test_51SandboxReelMoments"),
    stripe_restricted_key=_padded("rk_test_51SandboxReelMomentsHubAccess"),
    stripe_read_only_key=_padded("rk_test_51SandboxReelMomentsReadOnly"),
    stripe_webhook_secret=_padded("whsec_SandboxReelMomentsWebhookSecret", 43),
    sendgrid_api_key="SG.sandbox-reelmoments.OfflineReelMomentsKeyForTheHubSandbox00",
    inbound_parse_token="sandbox-reelmoments-inbound-parse-00000000000",  # noqa: S106
    slack_team="Reel Moments Studio",
    slack_team_id="T0REELMOMEN",
    slack_bot_token="xoxb-100000000002-200000000002-SandboxReelMomentsBotToken",  # noqa: S106
    messenger_page_id="100000000000002",
    messenger_page_name="Reel Moments Studio",
    messenger_page_token="EAAG" + _padded("SandboxReelMomentsPageAccessToken", 120),
    zoho_client_id="1000." + _padded("SANDBOXREELMOMENTS", 30),
    zoho_client_secret=_padded("3ee1a40e9e975", 42),
    zoho_refresh_token="1000." + _padded("3ee1", 32) + "." + _padded("de70", 32),
    zoho_organization_id="700000002",
    google_project="reel-moments-demo",
)

DEMO_WORKSPACES: tuple[DemoWorkspace, ...] = (LAKESIDE, REEL_MOMENTS)


def _code(value: str) -> str:
    return f"<code>{html.escape(value)}</code>"


def section(ctx: SandboxContext, emulators: list[str]) -> Section:
    """The control page's table: per demo workspace and provider, what to paste where.

    Stripe's signing secrets are read from the sandbox's endpoints, not from the constants:
    connecting without one makes the hub register its own endpoint (and secret) instead.
    """
    stripe = ctx.store.read("stripe") if "stripe" in emulators else {}
    rows: list[list[str]] = []
    for demo in DEMO_WORKSPACES:
        who = html.escape(demo.name)
        if "stripe" in emulators:
            rows += [
                [who, "Stripe", "secret key", _code(demo.stripe_secret_key)],
                [
                    who,
                    "Stripe",
                    "restricted key (Customers, Invoices, Webhook Endpoints: Write)",
                    _code(demo.stripe_restricted_key),
                ],
                [
                    who,
                    "Stripe",
                    "restricted key, read-only (refused by Test and save)",
                    _code(demo.stripe_read_only_key),
                ],
                [who, "Stripe", "publishable key (refused)", _code(demo.stripe_publishable_key)],
            ]
            rows += [
                [who, "Stripe", f"webhook signing secret ({html.escape(url)})", _code(secret)]
                for url, secret in _endpoint_secrets(stripe, demo.stripe_account)
            ]
        if "sendgrid" in emulators:
            rows.append([who, "SendGrid", "API key", _code(demo.sendgrid_api_key)])
        if "slack" in emulators:
            rows.append([who, "Slack", "bot token", _code(demo.slack_bot_token)])
        if "messenger" in emulators:
            rows.append(
                [
                    who,
                    "Messenger",
                    f"page access token (Page {html.escape(demo.messenger_page_id)})",
                    _code(demo.messenger_page_token),
                ]
            )
        if "zoho" in emulators:
            rows += [
                [who, "Zoho Books", "client ID", _code(demo.zoho_client_id)],
                [who, "Zoho Books", "client secret", _code(demo.zoho_client_secret)],
                [who, "Zoho Books", "refresh token", _code(demo.zoho_refresh_token)],
                [who, "Zoho Books", "organization ID", _code(demo.zoho_organization_id)],
            ]
        if "google" in emulators:
            link = f"/google/_sandbox/demo/{demo.slug}/service_account.json"
            rows.append(
                [
                    who,
                    "Google Drive",
                    "service account key (or use Connect with Google)",
                    f'<a href="{link}" download>service_account.json</a>',
                ]
            )
    return Section(
        "Demo workspaces: their own sandbox accounts",
        ["workspace", "provider", "what", "value"],
        rows,
        note="Sandbox-only test credentials, valid nowhere else. Paste them into the "
        "workspace's integration forms; each business has its own accounts.",
    )


def _endpoint_secrets(stripe: dict[str, Any], account: str) -> list[tuple[str, str]]:
    secrets: dict[str, str] = stripe.get("endpoint_secrets", {})
    endpoints: dict[str, Any] = (
        stripe.get("objects", {}).get(account, {}).get("webhook_endpoint", {})
    )
    return [
        (str(e["url"]), str(secrets[e["id"]]))
        for e in endpoints.values()
        if e["id"] in secrets and e.get("status") == "enabled"
    ]
