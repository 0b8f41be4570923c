"""The registry: every provider the console lists, each with its logo, and secret fields that
are SecretStr (so they never print)."""

from __future__ import annotations

import re
import types
import typing
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pydantic import SecretStr

from backend.integrations import registry
from backend.integrations.base import EmptyModel, Provider
from tests.integrations.support import OFFLINE

ASSETS = Path(__file__).resolve().parents[2] / "assets"
AVAILABLE = ["stripe", "sendgrid", "google_drive", "slack", "messenger", "zoho_books", "webhooks"]
COMING_SOON = [
    "shopify",
    "square",
    "medusa",
    "quickbooks",
    "twilio",
    "microsoft_365",
    "honeybook",
    "tave",
]
# Field names that hold a secret; ids (client_id, organization_id) are not secrets.
SECRET_NAME = re.compile(r"(secret|token|key|json|password)")


def slugs(providers: list[Provider]) -> list[str]:
    return [p.info.slug for p in providers]


def test_available_providers_come_first_in_a_stable_order() -> None:
    assert slugs(registry.providers()) == AVAILABLE + COMING_SOON
    assert slugs(registry.available()) == AVAILABLE
    assert slugs(registry.coming()) == COMING_SOON


def test_get_by_slug_and_unknown_slug_says_what_exists() -> None:
    assert registry.get("stripe").info.name == "Stripe"
    with pytest.raises(KeyError) as caught:
        registry.get("paypal")
    assert "no provider 'paypal'" in str(caught.value)
    assert "stripe" in str(caught.value)


@pytest.mark.parametrize("provider", registry.providers(), ids=lambda p: p.info.slug)
def test_each_provider_has_a_logo_that_is_svg(provider: Provider) -> None:
    assert provider.info.logo == f"/logos/{provider.info.slug}.svg"
    path = ASSETS / provider.info.logo.lstrip("/")
    assert path.is_file()
    # Our own files, not untrusted input.
    assert ET.parse(path).getroot().tag == "{http://www.w3.org/2000/svg}svg"  # noqa: S314


def annotation_types(annotation: object) -> set[object]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return set(typing.get_args(annotation))
    return {annotation}


@pytest.mark.parametrize("provider", registry.available(), ids=lambda p: p.info.slug)
def test_secret_fields_are_secretstr(provider: Provider) -> None:
    fields = provider.credentials_model.model_fields
    assert fields, "an available provider asks for credentials"
    secret_fields = [n for n in fields if SECRET_NAME.search(n) and not n.endswith("_id")]
    assert secret_fields
    for name in secret_fields:
        assert SecretStr in annotation_types(fields[name].annotation), name


def test_plans_categories_and_payment_flag() -> None:
    stripe = registry.get("stripe").info
    assert stripe.payment_provider and stripe.minimum_plan == "pro"
    assert {p.info.slug for p in registry.providers() if p.info.minimum_plan == "business"} >= {
        "zoho_books",
        "webhooks",
    }
    assert [p.info.slug for p in registry.available() if p.info.payment_provider] == ["stripe"]


@pytest.mark.parametrize("provider", registry.coming(), ids=lambda p: p.info.slug)
def test_coming_soon_has_no_form_and_does_not_connect(provider: Provider) -> None:
    assert not provider.info.available
    assert provider.credentials_model is EmptyModel
    assert provider.settings_model is EmptyModel
    provider.check_credentials(EmptyModel(), OFFLINE)
    result = provider.test_connection(EmptyModel(), EmptyModel(), OFFLINE)
    assert (result.ok, result.message) == (False, "Coming soon")


@pytest.mark.parametrize("provider", registry.available(), ids=lambda p: p.info.slug)
def test_settings_have_defaults_so_a_new_connection_can_start_empty(provider: Provider) -> None:
    provider.settings_model()
