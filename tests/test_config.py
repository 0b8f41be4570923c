"""Settings: sandbox works out of the box; live mode refuses placeholders and names them."""

from __future__ import annotations

import pytest

from backend.config import ProviderMode, Settings

REAL = {
    "secret_key": "k" * 48,
    "credential_keys": "k1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=",
    "cron_secret": "c" * 40,
    "platform_stripe_webhook_secret": "whsec_" + "p" * 32,
    "platform_stripe_secret_key": "sk_live_" + "s" * 32,
    "platform_stripe_client_id": "ca_" + "c" * 32,
    "google_client_id": "123456789012-" + "g" * 32 + ".apps.googleusercontent.com",
    "google_client_secret": "GOCSPX-" + "g" * 28,
}


def test_sandbox_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.provider_mode is ProviderMode.SANDBOX
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith(
        "var/hub.db"
    )


@pytest.mark.parametrize("missing", sorted(REAL))
def test_live_mode_names_the_placeholder_secret(missing: str) -> None:
    values = {**REAL, missing: "changeme"}
    with pytest.raises(ValueError, match=f"HUB_{missing.upper()}"):
        Settings(_env_file=None, provider_mode=ProviderMode.LIVE, **values)  # type: ignore[call-arg, arg-type]


def test_live_mode_with_real_secrets_starts() -> None:
    settings = Settings(_env_file=None, provider_mode=ProviderMode.LIVE, **REAL)  # type: ignore[call-arg, arg-type]
    assert settings.provider_mode is ProviderMode.LIVE


def test_environment_prefix_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_SIDECAR_PORT", "9100")
    assert Settings(_env_file=None).sidecar_port == 9100  # type: ignore[call-arg]
