"""Small providers of our own interface (not SDK mocks) for unit tests of the services."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, Field, SecretStr

from backend.integrations.base import (
    Category,
    ConnectionTest,
    InvalidCredentials,
    Method,
    PlanTier,
    Provider,
    ProviderContext,
    ProviderInfo,
)
from backend.integrations.deadline import within

GOOD_KEY = "key_live_good_0000001234"


class FakeCredentials(BaseModel):
    api_key: SecretStr = Field(title="API key")
    signing_secret: SecretStr | None = None
    account: str = ""


class FakeSettings(BaseModel):
    sender: str = Field(default="shop@example.com", pattern=r".+@.+")
    days: int = Field(default=7, ge=1, le=90)


@dataclass
class FakeProvider:
    info: ProviderInfo
    credentials_model: type[BaseModel] = FakeCredentials
    settings_model: type[BaseModel] = FakeSettings
    tested: list[str] = field(default_factory=list)

    def check_credentials(self, credentials: BaseModel, context: ProviderContext) -> None:
        assert isinstance(credentials, FakeCredentials)
        if credentials.api_key.get_secret_value().startswith("pk_"):
            raise InvalidCredentials(
                "This is a publishable key; paste the secret key.", field="api_key"
            )

    def test_connection(
        self, credentials: BaseModel, settings: BaseModel, context: ProviderContext
    ) -> ConnectionTest:
        assert isinstance(credentials, FakeCredentials)
        key = credentials.api_key.get_secret_value()
        # Where a real adapter's request runs (and what tests/support/tx_guard.py watches).
        with within(self.info.name, 10):
            self.tested.append(key)
        if key == GOOD_KEY:
            return ConnectionTest(True, "Connected.", 3, {"id": "acct_1", "name": "Shop"})
        return ConnectionTest(False, f"{self.info.name} refused the key (401).", 4)


def info(
    slug: str,
    *,
    minimum: PlanTier = PlanTier.PRO,
    payment: bool = False,
    available: bool = True,
) -> ProviderInfo:
    return ProviderInfo(
        slug=slug,
        name=slug.replace("_", " ").title(),
        category=Category.PAYMENTS if payment else Category.EMAIL,
        description=f"{slug} for tests",
        minimum_plan=minimum,
        logo=f"/logos/{slug}.svg",
        methods=(Method.API_KEY,),
        available=available,
        payment_provider=payment,
    )


class FakeCatalog:
    def __init__(self, providers: Iterable[FakeProvider]) -> None:
        self._by_slug = {p.info.slug: p for p in providers}

    def get(self, slug: str, /) -> Provider | None:
        return self._by_slug.get(slug)

    def providers(self) -> list[Provider]:
        return list(self._by_slug.values())

    def __getitem__(self, slug: str) -> FakeProvider:
        return self._by_slug[slug]


def catalog() -> FakeCatalog:
    return FakeCatalog(
        [
            FakeProvider(info("stripe", payment=True)),
            FakeProvider(info("sendgrid")),
            FakeProvider(info("zoho_books", minimum=PlanTier.BUSINESS)),
            FakeProvider(info("square", payment=True, minimum=PlanTier.BUSINESS)),
            FakeProvider(info("webhooks", minimum=PlanTier.BUSINESS)),
            FakeProvider(info("shopify", available=False)),
        ]
    )


CONTEXT = ProviderContext(live=False, sandbox_url=None)
