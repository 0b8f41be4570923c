"""A provider's pydantic model as a form, and a submitted form back as the model's values
(backend/connections/forms.py): what the Manage page draws and sends."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

from backend.connections.forms import FormField, field_kind, form_fields, form_values
from backend.integrations.outbound_webhooks import WebhookSettings
from backend.integrations.stripe import StripeCredentials, StripeSettings


class _Keys(BaseModel):
    api_key: SecretStr = Field(title="API key", description="From the provider's dashboard.")
    backup_key: SecretStr | None = None
    account_id: str
    region: str = "eu"
    retries: int = 3
    verbose: bool = False
    tags: list[str] | None = None


def test_every_field_in_model_order_with_its_kind_label_help_and_required_flag() -> None:
    fields = form_fields(_Keys, {})

    assert fields == [
        FormField("api_key", "API key", "secret", "From the provider's dashboard.", "", True),
        FormField("backup_key", "Backup key", "secret", "", "", False),
        FormField("account_id", "Account id", "text", "", "", True),
        FormField("region", "Region", "text", "", "", False),
        FormField("retries", "Retries", "number", "", "", False),
        FormField("verbose", "Verbose", "bool", "", "", False),
        FormField("tags", "Tags", "list", "", "", False),
    ]


def test_stored_values_fill_the_form_but_a_secret_never_does() -> None:
    stored = {
        "api_key": "sk_live_123456789",
        "backup_key": SecretStr("sk_live_987654321"),
        "account_id": "acct_1",
        "retries": 5,
        "verbose": True,
        "tags": ["a", "b"],
    }

    values = {f.name: f.value for f in form_fields(_Keys, stored)}

    assert values == {
        "api_key": "",
        "backup_key": "",
        "account_id": "acct_1",
        "region": "",
        "retries": "5",
        "verbose": "True",
        "tags": "a, b",
    }


def test_a_real_providers_credentials_are_password_inputs() -> None:
    fields = {f.name: f for f in form_fields(StripeCredentials, {})}

    assert fields["secret_key"].kind == "secret"
    assert fields["secret_key"].required
    assert fields["secret_key"].help.startswith("Secret key (sk_…)")
    assert fields["webhook_signing_secret"].kind == "secret"
    assert not fields["webhook_signing_secret"].required
    settings = {f.name: f.kind for f in form_fields(StripeSettings, {"days_until_due": 14})}
    assert settings == {
        "default_currency": "text",
        "invoice_memo_template": "text",
        "days_until_due": "number",
    }


def test_a_submitted_form_reads_as_the_model_expects() -> None:
    submitted = {
        "api_key": "  sk_new  ",
        "backup_key": "",  # a secret left blank: the stored one is kept
        "account_id": " acct_2 ",
        "retries": "7",
        "verbose": "on",
        "tags": "a, , b ,c",
        "unknown": "ignored",
    }

    values = form_values(_Keys, submitted)

    assert values == {
        "api_key": "sk_new",
        "account_id": "acct_2",
        "retries": "7",  # pydantic converts, and explains a bad number
        "verbose": True,
        "tags": ["a", "b", "c"],
    }
    assert _Keys.model_validate(values).retries == 7


def test_an_unchecked_box_and_a_blank_text_are_sent_as_such() -> None:
    values = form_values(_Keys, {"verbose": "", "region": "  "})

    assert values == {"verbose": False, "region": ""}


def test_optional_types_are_read_as_what_they_wrap() -> None:
    assert field_kind(SecretStr | None) == "secret"
    assert field_kind(int | None) == "number"
    assert field_kind(list[str] | None) == "list"
    assert field_kind(str) == "text"


def test_a_plain_list_field_is_a_list_input() -> None:
    assert {f.name: f.kind for f in form_fields(WebhookSettings, {})}["events"] == "list"
    assert field_kind(list[str]) == field_kind(list[str] | None) == "list"
    assert form_values(WebhookSettings, {"events": "invoice.paid, show.live"})["events"] == [
        "invoice.paid",
        "show.live",
    ]
