"""Google Drive's declaration (``PROVIDER``): a service-account key form (or OAuth), the root
folder setting, and the connection test.

Tested in tests/integrations/test_google_drive.py (through google-api-python-client and
google-auth, against the sandbox).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr

from backend.integrations._common import expect
from backend.integrations.base import (
    Category,
    ConnectionTest,
    InvalidCredentials,
    Method,
    PlanTier,
    Provider,
    ProviderContext,
    ProviderInfo,
    timed,
)
from backend.integrations.google_drive.adapter import (
    GoogleDriveAdapter,
    parse_service_account,
    service_account_credentials,
)


class GoogleDriveCredentials(BaseModel):
    service_account_json: SecretStr = Field(
        description="The JSON key file of a service account (IAM → Service accounts → Keys)."
    )


class GoogleDriveSettings(BaseModel):
    root_folder_name: str = Field(default="Integrations Hub", min_length=1, max_length=200)


class GoogleDriveProvider:
    info = ProviderInfo(
        slug="google_drive",
        name="Google Drive",
        category=Category.FILES,
        description="Keep contracts, invoices and exports in a Drive folder per show.",
        minimum_plan=PlanTier.PRO,
        logo="/logos/google_drive.svg",
        # API_KEY here means "paste a service account JSON key".
        methods=(Method.OAUTH, Method.API_KEY),
        docs_url="https://cloud.google.com/iam/docs/keys-create-delete",
    )
    credentials_model: type[BaseModel] = GoogleDriveCredentials
    settings_model: type[BaseModel] = GoogleDriveSettings

    def check_credentials(self, credentials: BaseModel, context: ProviderContext) -> None:
        raw = expect(credentials, GoogleDriveCredentials).service_account_json.get_secret_value()
        service_account_credentials(parse_service_account(raw), context)

    def test_connection(
        self, credentials: BaseModel, settings: BaseModel, context: ProviderContext
    ) -> ConnectionTest:
        raw = expect(credentials, GoogleDriveCredentials).service_account_json.get_secret_value()
        try:
            info = parse_service_account(raw)
            adapter = GoogleDriveAdapter.from_service_account(info, context)
        except InvalidCredentials as exc:
            return ConnectionTest(False, str(exc), 0)

        def call() -> dict[str, Any]:
            adapter.probe()
            return {"client_email": info["client_email"], "project_id": info.get("project_id")}

        return timed(call, f"Connected to Google Drive as {info['client_email']}.")


PROVIDER: Provider = GoogleDriveProvider()
