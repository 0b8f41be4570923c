"""Providers the console lists as "coming soon": a card with a logo and no key form, so that
operators see what is planned. Nothing here calls anyone.

Tested in tests/integrations/test_registry.py and tests/connections/test_tiers.py."""

from __future__ import annotations

from pydantic import BaseModel

from backend.integrations.base import (
    Category,
    ConnectionTest,
    EmptyModel,
    PlanTier,
    Provider,
    ProviderContext,
    ProviderInfo,
)

COMING_SOON_MESSAGE = "Coming soon"


class ComingSoonProvider:
    credentials_model: type[BaseModel] = EmptyModel
    settings_model: type[BaseModel] = EmptyModel

    def __init__(self, info: ProviderInfo) -> None:
        self.info = info

    def check_credentials(self, credentials: BaseModel, context: ProviderContext) -> None:
        return None

    def test_connection(
        self, credentials: BaseModel, settings: BaseModel, context: ProviderContext
    ) -> ConnectionTest:
        return ConnectionTest(False, COMING_SOON_MESSAGE, 0)


def _soon(
    slug: str, name: str, category: Category, description: str, plan: PlanTier = PlanTier.PRO
) -> Provider:
    return ComingSoonProvider(
        ProviderInfo(
            slug=slug,
            name=name,
            category=category,
            description=description,
            minimum_plan=plan,
            logo=f"/logos/{slug}.svg",
            available=False,
            payment_provider=category is Category.PAYMENTS,
        )
    )


PROVIDERS: tuple[Provider, ...] = (
    _soon("shopify", "Shopify", Category.COMMERCE, "Sell tickets and merchandise from Shopify."),
    _soon("square", "Square", Category.PAYMENTS, "Take in-person and online payments."),
    _soon("medusa", "MedusaJS", Category.COMMERCE, "Connect a self-hosted Medusa store."),
    _soon(
        "quickbooks",
        "QuickBooks",
        Category.ACCOUNTING,
        "Record invoices and payouts in QuickBooks Online.",
        PlanTier.BUSINESS,
    ),
    _soon("twilio", "Twilio", Category.MESSAGING, "Send text-message reminders and links."),
    _soon("microsoft_365", "Microsoft 365", Category.EMAIL, "Send mail from your Outlook domain."),
    _soon("honeybook", "HoneyBook", Category.CRM, "Bring clients and projects from HoneyBook."),
    _soon("tave", "Tave", Category.CRM, "Bring clients and jobs from Tave."),
)
