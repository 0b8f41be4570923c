"""Settings: the only place that reads the environment (prefix ``HUB_``, ``.env`` supported).

In sandbox mode every secret has a development default so that ``make run`` works on a fresh
machine. In live mode a missing or placeholder secret stops start-up with a message naming it.
"""

from __future__ import annotations

import functools
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "var" / "hub.db"

# Values that mean "nobody set this": refused in live mode.
_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "dev", "sandbox-only-not-secret"}
_DEV_SECRET = "sandbox-only-not-secret"  # noqa: S105 - refused in live mode
# 32 bytes, base64: a development key ring entry. Refused in live mode like the other placeholders.
_DEV_CREDENTIAL_KEY = "dev1:c2FuZGJveC1vbmx5LWtleS1ub3QtZm9yLWxpdmUhISE="
# The sandbox's platform Stripe endpoint secret: it signs the webhooks the sandbox delivers.
_SANDBOX_PLATFORM_WEBHOOK_SECRET = "whsec_SandboxPlatformWebhookSecret000000000"  # noqa: S105
# The sandbox's platform Stripe account (plans, upgrades and Stripe Connect OAuth).
_SANDBOX_PLATFORM_SECRET_KEY = "sk_test_51SandboxPlatform0000000000000000000000000000000"  # noqa: S105
_SANDBOX_PLATFORM_CLIENT_ID = "ca_SandboxPlatform00000000000000000"
# The sandbox's built-in Google OAuth client (Google Drive through the consent screen).
_SANDBOX_GOOGLE_CLIENT_ID = (
    "100000000000-sandboxintegrationshub0000000000.apps.googleusercontent.com"
)
_SANDBOX_GOOGLE_CLIENT_SECRET = "GOCSPX-SandboxIntegrationsHub000000000"  # noqa: S105
_DEV_VALUES = {
    _DEV_CREDENTIAL_KEY,
    _SANDBOX_PLATFORM_WEBHOOK_SECRET,
    _SANDBOX_PLATFORM_SECRET_KEY,
    _SANDBOX_PLATFORM_CLIENT_ID,
    _SANDBOX_GOOGLE_CLIENT_ID,
    _SANDBOX_GOOGLE_CLIENT_SECRET,
}


class ProviderMode(StrEnum):
    SANDBOX = "sandbox"
    LIVE = "live"


class SettingsError(RuntimeError):
    """Raised when the settings cannot be used; the message names what to fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUB_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(default=f"sqlite:///{DEFAULT_SQLITE_PATH}")
    # Connections each process keeps open to PostgreSQL, and how many more it may open for a
    # moment (opening one costs a server process: keep the pool at the concurrency you expect).
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_max_overflow: int = Field(default=10, ge=0, le=200)
    provider_mode: ProviderMode = ProviderMode.SANDBOX

    console_port: int = 3000
    sidecar_port: int = 8100
    sandbox_port: int = 8200
    host: str = "127.0.0.1"
    # Where browsers and providers reach the processes (links in emails, OAuth callbacks).
    public_console_url: str = "http://127.0.0.1:3000"
    public_sidecar_url: str = "http://127.0.0.1:8100"

    # Signs sessions' companions, OAuth state and links sent to people.
    secret_key: SecretStr = SecretStr(_DEV_SECRET)
    # Ordered key ring "id:base64key,id:base64key": the first encrypts, all decrypt.
    credential_keys: SecretStr = SecretStr(_DEV_CREDENTIAL_KEY)
    # Guards POST /outbox/run for an external cron.
    cron_secret: SecretStr = SecretStr(_DEV_SECRET)
    # Verifies the platform's own Stripe account webhooks (plans and upgrades).
    platform_stripe_webhook_secret: SecretStr = SecretStr(_SANDBOX_PLATFORM_WEBHOOK_SECRET)
    # The platform's own Stripe account: sells the plans (Checkout) and is the Connect platform.
    platform_stripe_secret_key: SecretStr = SecretStr(_SANDBOX_PLATFORM_SECRET_KEY)
    platform_stripe_client_id: str = _SANDBOX_PLATFORM_CLIENT_ID
    # Monthly plan prices (minor units), used when the platform's prices do not exist yet.
    plan_price_currency: str = "usd"
    pro_price_cents: int = Field(default=2900, ge=0)
    business_price_cents: int = Field(default=9900, ge=0)
    # The Google OAuth client for Drive ("Connect with Google"); its redirect URI is
    # {public_sidecar_url}/oauth/google/callback. The defaults are the sandbox's built-in client.
    google_client_id: str = _SANDBOX_GOOGLE_CLIENT_ID
    google_client_secret: SecretStr = SecretStr(_SANDBOX_GOOGLE_CLIENT_SECRET)

    # Webhook intake: how far a signed timestamp may be from now (both ways), and the largest
    # body read (providers send far less; the cap bounds memory per request).
    webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    max_webhook_body_bytes: int = Field(default=1_048_576, ge=1024)
    # How long the sidecar keeps a workspace's webhook secret after looking it up (0: never).
    # A rotated secret works at once; a disconnected integration stops receiving within this.
    webhook_receiver_cache_seconds: float = Field(default=10.0, ge=0, le=300)
    # Connections through which each sidecar process stores webhooks on PostgreSQL, each
    # committing a batch of whatever arrived while the previous batch committed.
    webhook_intake_writers: int = Field(default=2, ge=1, le=32)

    session_ttl_hours: int = Field(default=12, ge=1, le=24 * 30)
    # Login throttling: after this many failures in a row each attempt waits longer.
    login_free_failures: int = Field(default=3, ge=1)
    login_max_delay_seconds: int = Field(default=300, ge=1)
    # The same, per client address across every email tried (password spraying); higher,
    # since people behind one office's address share it. A run is forgotten after an hour.
    login_client_free_failures: int = Field(default=10, ge=1)
    login_forget_minutes: int = Field(default=60, ge=1)

    # Where the provider sandbox keeps its state between restarts ("" keeps it in memory only).
    sandbox_state_file: str = str(PROJECT_ROOT / "var" / "sandbox.json")

    heartbeat_seconds: int = Field(default=5, ge=1)
    # How often the served sidecar checks the scheduler's heartbeat and raises (or settles) the
    # platform's "scheduler stopped" incident; 0: never (backend/api/scheduler_watch.py).
    scheduler_watch_seconds: float = Field(default=30.0, ge=0.0)
    # Where the platform's own incidents (the scheduler stopped) are posted, as JSON
    # {"text": …}: a Slack incoming-webhook URL, or any endpoint of the team that runs the hub.
    # Unset: they are logged and shown by /readyz only. Never a workspace's: no business owns it.
    platform_alert_url: str | None = None
    # How long a starting scheduler waits for the database to answer and be migrated before it
    # gives up (0: for ever). Under honcho one process exiting stops all of them, so it waits.
    scheduler_wait_seconds: float = Field(default=0.0, ge=0.0)
    # Outbox worker threads in each scheduler process (run more processes to scale out).
    outbox_threads: int = Field(default=2, ge=1, le=32)
    # Jobs a worker thread claims at a time. Jobs that only touch the database run together in
    # one transaction, so a larger batch means fewer commits; a claimed batch waits for its
    # thread, so keep it small enough to finish well within the lease.
    outbox_batch: int = Field(default=500, ge=1, le=5000)
    # Threads in each scheduler process that run jobs calling a provider (Stripe invoices,
    # emails, ...), apart from the outbox threads: such a job mostly waits, for the provider and
    # for its turn under the provider's rate limit (shared by every worker), so it takes several
    # at once to use a limit such as Stripe's 25 requests a second. 0: the outbox threads run
    # them, one at a time each.
    outbox_provider_threads: int = Field(default=8, ge=0, le=64)
    # On PostgreSQL, new jobs wake a worker at most this often: jobs arriving together run as
    # one batch, in one transaction, instead of each paying for a claim and a commit. Adds at
    # most this much to a job's wait for a worker.
    outbox_coalesce_seconds: float = Field(default=0.05, ge=0.0, le=1.0)
    # How long a worker holds a job before another may take it (extended while it runs), and
    # how often the scheduler looks for jobs whose worker died.
    outbox_lease_seconds: int = Field(default=60, ge=1)
    outbox_rescue_seconds: int = Field(default=5, ge=1)
    # How often each scheduler evaluates the alert rules (``alert-rules``): how soon a failing
    # provider becomes an incident and its notice. With several schedulers on PostgreSQL one of
    # them evaluates a tick (an advisory lock); an evaluation more changes nothing.
    alert_rules_seconds: int = Field(default=60, ge=1, le=3600)
    # How long an incident's condition must have been gone before the incident resolves by
    # itself (and its "resolved" notice goes out): long enough that a provider coming and going
    # is one incident, not one every few minutes.
    alert_auto_resolve_seconds: int = Field(default=300, ge=1, le=86_400)
    # A provider account's breaker: how long it stays open before it lets one probe through,
    # doubled after each failed probe up to the longest (backend/platform/circuits.py).
    breaker_open_seconds: float = Field(default=30.0, gt=0, le=3600)
    breaker_max_open_seconds: float = Field(default=600.0, gt=0, le=86_400)
    log_level: str = "INFO"
    # /metrics: a bearer token every scrape must send. In live mode without one, only a scraper
    # on this machine (a loopback client) is answered: the figures name job kinds and backlogs.
    metrics_token: SecretStr | None = None
    # How long a scrape's backlog figures are reused: each read is a GROUP BY over the outbox
    # (under SQLite's write lock), and a scraper, or a stranger, may ask as often as it likes.
    metrics_cache_seconds: float = Field(default=10.0, ge=0.0)
    # /docs, /redoc and /openapi.json. Unset: served in sandbox mode, not in live mode.
    api_docs: bool | None = None

    @model_validator(mode="after")
    def _refuse_placeholders_in_live_mode(self) -> Settings:
        if self.provider_mode is ProviderMode.LIVE:
            for name in (
                "secret_key",
                "credential_keys",
                "cron_secret",
                "platform_stripe_webhook_secret",
                "platform_stripe_secret_key",
                "platform_stripe_client_id",
                "google_client_id",
                "google_client_secret",
            ):
                value: SecretStr | str = getattr(self, name)
                raw = (value.get_secret_value() if isinstance(value, SecretStr) else value).strip()
                if raw.lower() in _PLACEHOLDERS or raw in _DEV_VALUES:
                    raise ValueError(
                        f"HUB_{name.upper()} is missing or a placeholder; live mode needs a real "
                        f"value (see docs/OPERATIONS.md, 'Environment variables')."
                    )
        return self

    @property
    def api_docs_served(self) -> bool:
        if self.api_docs is not None:
            return self.api_docs
        return self.provider_mode is ProviderMode.SANDBOX

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sandbox_url(self) -> str:
        """Where the adapters and people reach the offline provider sandbox."""
        return f"http://127.0.0.1:{self.sandbox_port}"


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read once. Raises SettingsError with the variable to fix."""
    try:
        return Settings()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise SettingsError(str(exc)) from exc
