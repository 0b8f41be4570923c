"""Every provider the console knows, available ones first then coming soon, in a fixed order.
Pure: no database, no settings; the services decide what a workspace may connect."""

from __future__ import annotations

from backend.integrations import (
    coming_soon,
    google_drive,
    messenger,
    outbound_webhooks,
    sendgrid,
    slack,
    stripe,
    zoho_books,
)
from backend.integrations.base import Provider

# The order the console shows them in.
_AVAILABLE: tuple[Provider, ...] = (
    stripe.PROVIDER,
    sendgrid.PROVIDER,
    google_drive.PROVIDER,
    slack.PROVIDER,
    messenger.PROVIDER,
    zoho_books.PROVIDER,
    outbound_webhooks.PROVIDER,
)
_ALL: tuple[Provider, ...] = _AVAILABLE + coming_soon.PROVIDERS
_BY_SLUG: dict[str, Provider] = {p.info.slug: p for p in _ALL}
# A slug typed twice would silently hide a provider; fail at import instead.
if len(_BY_SLUG) != len(_ALL):
    raise RuntimeError("two providers share a slug")


class UnknownProvider(KeyError):
    def __init__(self, slug: str) -> None:
        super().__init__(slug)
        self.slug = slug

    def __str__(self) -> str:
        return f"no provider {self.slug!r}; known: {', '.join(_BY_SLUG)}"


def providers() -> list[Provider]:
    """All of them: available first, then coming soon."""
    return list(_ALL)


def available() -> list[Provider]:
    return [p for p in _ALL if p.info.available]


def coming() -> list[Provider]:
    return [p for p in _ALL if not p.info.available]


def get(slug: str) -> Provider:
    try:
        return _BY_SLUG[slug]
    except KeyError:
        raise UnknownProvider(slug) from None
