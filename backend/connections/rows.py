"""A workspace's integration rows and the checks made before one is written: finding (or
creating) the row, the plan's tier, and the rule that a provider account belongs to one
workspace (its id is kept in ``external_account_id``, UNIQUE per provider, and sealed with the
credentials; compared on connect).

Covered by tests/connections/test_service.py and test_service_stripe.py (through connect, test
and disconnect).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.connections import credentials, tiers
from backend.connections.catalog import Catalog, provider
from backend.integrations.base import ConnectionTest, ProviderInfo
from backend.platform.errors import NotFound, PlanRequired
from backend.security.crypto import CryptoError
from models import Integration, IntegrationStatus, Workspace

# Kept with the sealed credentials: the provider account they reach (Stripe's acct_…), from the
# connection test. Another workspace connecting the same account is refused while this is here.
ACCOUNT_KEY = "account_id"


def find(session: Session, *, workspace_id: int, provider_slug: str) -> Integration | None:
    return session.scalars(
        select(Integration).where(
            Integration.workspace_id == workspace_id, Integration.provider == provider_slug
        )
    ).first()


def required(session: Session, *, workspace_id: int, provider_slug: str) -> Integration:
    row = find(session, workspace_id=workspace_id, provider_slug=provider_slug)
    if row is None:
        raise NotFound(f"{provider_slug} is not connected in this workspace.")
    return row


def get_or_create(session: Session, *, workspace_id: int, info: ProviderInfo) -> Integration:
    """The workspace's row for this provider, created (and flushed, for its id) if missing.
    Two owners connecting at once race on UNIQUE(workspace, provider): the loser re-reads."""
    row = find(session, workspace_id=workspace_id, provider_slug=info.slug)
    if row is not None:
        return row
    row = Integration(
        workspace_id=workspace_id,
        provider=info.slug,
        display_name=info.name,
        status=IntegrationStatus.INACTIVE,
        settings={},
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        existing = find(session, workspace_id=workspace_id, provider_slug=info.slug)
        if existing is None:
            raise
        return existing
    return row


def workspace_of(session: Session, workspace_id: int) -> Workspace:
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound("This workspace no longer exists.")
    return workspace


def active_payment_providers(
    session: Session, *, workspace_id: int, catalog: Catalog | None = None
) -> list[str]:
    """Slugs of the workspace's active integrations that are payment providers."""
    slugs = session.scalars(
        select(Integration.provider).where(
            Integration.workspace_id == workspace_id,
            Integration.status == IntegrationStatus.ACTIVE,
        )
    ).all()
    out = []
    for slug in slugs:
        try:
            if provider(slug, catalog).info.payment_provider:
                out.append(slug)
        except NotFound:
            continue
    return out


def check_tier(
    session: Session, *, workspace_id: int, info: ProviderInfo, catalog: Catalog | None = None
) -> None:
    """Raise PlanRequired unless the workspace's plan allows connecting ``info`` now."""
    workspace = workspace_of(session, workspace_id)
    verdict = tiers.can_connect(
        workspace.plan,
        info,
        active_payment_providers(session, workspace_id=workspace_id, catalog=catalog),
    )
    if not verdict.ok:
        raise PlanRequired(verdict.reason)


def connected_elsewhere(
    session: Session, *, workspace_id: int, info: ProviderInfo, account_id: str
) -> str | None:
    """The name of another workspace whose connection to this provider reaches
    ``account_id``, or None. Connections hold it in ``external_account_id`` (one indexed
    read); those made before that column learn it at their next test, and until then their
    sealed copy is compared (unsealed: a connect is rare)."""
    holder = session.scalar(
        select(Workspace.name)
        .join(Integration, Integration.workspace_id == Workspace.id)
        .where(
            Integration.provider == info.slug,
            Integration.external_account_id == account_id,
            Integration.workspace_id != workspace_id,
        )
    )
    if holder is not None:
        return str(holder)
    rows = session.execute(
        select(Integration, Workspace.name)
        .join(Workspace, Workspace.id == Integration.workspace_id)
        .where(
            Integration.provider == info.slug,
            Integration.workspace_id != workspace_id,
            Integration.external_account_id.is_(None),
            Integration.credentials_enc.is_not(None),
            Integration.status.in_([IntegrationStatus.ACTIVE, IntegrationStatus.ERROR]),
        )
        .order_by(Integration.id)
    ).all()
    for row, name in rows:
        try:
            if credentials.unseal(row).get(ACCOUNT_KEY) == account_id:
                return str(name)
        except CryptoError:
            continue
    return None


def account_to_keep(info: ProviderInfo, outcome: ConnectionTest) -> str | None:
    """The account id to seal with the credentials, for providers whose accounts are one
    workspace's each."""
    if outcome.ok and info.one_workspace_per_account and outcome.account.get("id"):
        return str(outcome.account["id"])
    return None


def shared_account_refusal(info: ProviderInfo, account_id: str, other: str) -> str:
    return (
        f"This {info.name} account ({account_id}) is already connected to the workspace "
        f"“{other}”. Each business connects its own {info.name} account: paste this "
        f"workspace's own key, or disconnect {info.name} in “{other}” first."
    )


def refuse_shared_account(
    session: Session, *, workspace_id: int, info: ProviderInfo, outcome: ConnectionTest
) -> str | None:
    """Why this connection may not be saved (its account belongs to another workspace)."""
    account_id = account_to_keep(info, outcome)
    if account_id is None:
        return None
    other = connected_elsewhere(
        session, workspace_id=workspace_id, info=info, account_id=account_id
    )
    if other is None:
        return None
    return shared_account_refusal(info, account_id, other)


def claim_account(
    session: Session,
    *,
    workspace_id: int,
    info: ProviderInfo,
    account_id: str | None,
    existing: Integration | None,
) -> Integration | str:
    """The workspace's row (``existing``, or one created) holding ``account_id``, written now
    in a savepoint; or the refusal, when another workspace's connection got the account
    first. ``refuse_shared_account`` has looked already, but two workspaces connecting one
    account at the same instant both pass that look: UNIQUE(provider, external_account_id)
    lets one win, and the other is told what the look would have said. A row created here
    goes with the savepoint, so a refused workspace keeps no empty row."""
    try:
        with session.begin_nested():
            row = existing or get_or_create(session, workspace_id=workspace_id, info=info)
            row.external_account_id = account_id
            session.flush()
    except IntegrityError:
        other = None
        if account_id is not None:
            other = connected_elsewhere(
                session, workspace_id=workspace_id, info=info, account_id=account_id
            )
        if account_id is None or other is None:
            raise  # not the account's constraint
        return shared_account_refusal(info, account_id, other)
    return row


def learn_account(
    session: Session, *, row: Integration, info: ProviderInfo, account_id: str
) -> str | None:
    """A passing test tells which account a connection reaches; one made before account ids
    were kept takes it now. Returns the name of another workspace that has the account (then
    it is not taken: neither is silently the owner's), or None."""
    other = connected_elsewhere(
        session, workspace_id=row.workspace_id, info=info, account_id=account_id
    )
    if other is not None or row.external_account_id == account_id:
        return other
    taken = claim_account(
        session, workspace_id=row.workspace_id, info=info, account_id=account_id, existing=row
    )
    if isinstance(taken, str):  # another workspace's connection took it this very instant
        return connected_elsewhere(
            session, workspace_id=row.workspace_id, info=info, account_id=account_id
        )
    return None


def release_account(row: Integration) -> None:
    """The connection no longer reaches its account (disconnected, switched off): another
    workspace may connect it."""
    row.external_account_id = None
