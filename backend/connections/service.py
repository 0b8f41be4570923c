"""A workspace's connections to providers: connect with keys (checked, tested, sealed), test,
update settings, disconnect, and the view the Integrations page draws its tiles from.

Secrets only travel inward: they are sealed before they are stored, never put in an audit row,
a log line or an exception, and what comes back to the console is a masked last four.
"""

from __future__ import annotations

import datetime as dt
import time
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.connections import credentials, provider_status, stripe_webhook_setup, tiers
from backend.integrations import registry as _registry
from backend.integrations.base import (
    ConnectionTest,
    InvalidCredentials,
    Provider,
    ProviderContext,
    ProviderInfo,
)
from backend.integrations.errors import ProviderAuthFailed, ProviderError
from backend.platform import audit
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, NotFound, PlanRequired
from backend.platform.provider_failures import Failure, describe
from backend.security.crypto import CryptoError
from models import Integration, IntegrationLog, IntegrationStatus, Plan, Workspace, utcnow

MASK = "••••"
TEST_OPERATION = "test_connection"
# Kept with the sealed credentials: the provider account they reach (Stripe's acct_…), from the
# connection test. Another workspace connecting the same account is refused while this is here.
ACCOUNT_KEY = "account_id"

Revoke = Callable[[dict[str, Any]], None]
# Tests stored secrets that the provider's key form does not describe (OAuth tokens). It may
# renew them in the dict it is given: what it leaves there is what gets stored.
Tester = Callable[[dict[str, Any]], ConnectionTest]


class Catalog(Protocol):
    """What the services need of ``backend.integrations.registry`` (tests pass their own)."""

    def get(self, slug: str, /) -> Provider | None: ...

    def providers(self) -> Iterable[Provider]: ...


def registry() -> Catalog:
    """The provider registry (a module satisfies the protocol)."""
    return _registry


def provider(slug: str, catalog: Catalog | None = None) -> Provider:
    try:
        found = (catalog or registry()).get(slug)
    except LookupError:
        found = None
    if found is None:
        raise NotFound(f"There is no integration called {slug!r}.")
    return found


# -- results the console shows --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """The outcome of a connect or test: ``saved`` says whether a row was written."""

    ok: bool
    saved: bool
    message: str
    status: IntegrationStatus | None = None
    latency_ms: int = 0
    account: dict[str, Any] = field(default_factory=dict)
    masked: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """One tile of the Integrations page."""

    slug: str
    name: str
    category: str
    description: str
    logo: str
    # "connected" | "error" | "connect" | "locked" | "coming_soon"
    state: str
    status: str | None
    required_plan: str
    locked_reason: str
    methods: tuple[str, ...]
    payment_provider: bool
    last_checked_at: dt.datetime | None
    last_error: str | None
    connected_at: dt.datetime | None
    masked: dict[str, str]
    settings: dict[str, Any]
    docs_url: str


# -- secrets and their masks ------------------------------------------------------------------


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_secret(arg) for arg in get_args(annotation))
    return False


def secret_fields(model: type[BaseModel]) -> list[str]:
    """The fields of a credentials form that hold secrets (typed ``SecretStr``)."""
    return [name for name, info in model.model_fields.items() if _is_secret(info.annotation)]


def mask(value: str) -> str:
    """``••••1234``; short values show nothing, so a mask never gives most of a secret away."""
    value = value.strip()
    return MASK + value[-4:] if len(value) >= 12 else MASK


def masked_view(integration: Integration, catalog: Catalog | None = None) -> dict[str, str]:
    """The stored secret fields, masked (``{"secret_key": "••••1234"}``); {} when none or
    unreadable. Never the secret itself: this is what may reach a browser."""
    try:
        stored = credentials.unseal(integration)
    except CryptoError:
        return {}
    try:
        names = secret_fields(provider(integration.provider, catalog).credentials_model)
    except NotFound:
        names = []
    return {name: mask(str(stored[name])) for name in names if stored.get(name)}


def _plain(model: BaseModel) -> dict[str, Any]:
    """A validated credentials model as JSON-able values, secrets unwrapped (to be sealed)."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value().strip()
        if value is None or value == "":
            continue
        out[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return out


def _field_label(model: type[BaseModel], name: str) -> str:
    info = model.model_fields.get(name)
    return (info.title if info and info.title else name.replace("_", " ")).capitalize()


def _validated(model: type[BaseModel], data: Mapping[str, Any], what: str) -> BaseModel:
    """``model`` from a form, with pydantic's complaint turned into one naming the field (and
    never echoing the value: it may be a secret)."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        label = _field_label(model, name) if name else what
        raise InvalidInput(f"{label}: {first['msg']}.", field=name or None) from None


def _merge_blank_secrets(
    submitted: Mapping[str, Any], existing: Mapping[str, Any], model: type[BaseModel]
) -> dict[str, Any]:
    """The form as submitted, with each secret left blank (or still showing its mask) taken
    from the stored credentials: updating one field must not mean re-typing every key."""
    merged = {k: v for k, v in submitted.items()}
    for name in secret_fields(model):
        value = merged.get(name)
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if (text is None or str(text).strip() == "" or str(text).startswith(MASK)) and (
            name in existing
        ):
            merged[name] = existing[name]
        elif text is not None and str(text).startswith(MASK):
            merged.pop(name)  # a mask is never a value
    return merged


# -- rows -------------------------------------------------------------------------------------


def find(session: Session, *, workspace_id: int, provider_slug: str) -> Integration | None:
    return session.scalars(
        select(Integration).where(
            Integration.workspace_id == workspace_id, Integration.provider == provider_slug
        )
    ).first()


def _required(session: Session, *, workspace_id: int, provider_slug: str) -> Integration:
    row = find(session, workspace_id=workspace_id, provider_slug=provider_slug)
    if row is None:
        raise NotFound(f"{provider_slug} is not connected in this workspace.")
    return row


def _get_or_create(session: Session, *, workspace_id: int, info: ProviderInfo) -> Integration:
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


def _workspace(session: Session, workspace_id: int) -> Workspace:
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
    workspace = _workspace(session, workspace_id)
    verdict = tiers.can_connect(
        workspace.plan,
        info,
        active_payment_providers(session, workspace_id=workspace_id, catalog=catalog),
    )
    if not verdict.ok:
        raise PlanRequired(verdict.reason)


def _run_test(
    session: Session,
    *,
    workspace_id: int,
    integration_id: int | None,
    prov: Provider,
    call: Callable[[], ConnectionTest],
) -> tuple[ConnectionTest, IntegrationLog]:
    """Run a connection test and log it in integration_logs (every test, pass or fail)."""
    started = time.perf_counter()
    try:
        outcome = call()
    except ProviderError as exc:
        # Adapters' errors are safe to show (no secrets); anything else is a bug and propagates.
        elapsed = round((time.perf_counter() - started) * 1000)
        outcome = ConnectionTest(False, str(exc), elapsed, error=exc)
    log = IntegrationLog(
        workspace_id=workspace_id,
        integration_id=integration_id,
        provider=prov.info.slug,
        operation=TEST_OPERATION,
        status="ok" if outcome.ok else "error",
        latency_ms=outcome.latency_ms,
        error=None if outcome.ok else outcome.message[:2000],
        at=utcnow(),
    )
    session.add(log)
    return outcome, log


def _connected_elsewhere(
    session: Session, *, workspace_id: int, info: ProviderInfo, account_id: str
) -> str | None:
    """The name of another workspace whose connection to this provider reaches
    ``account_id``, or None. The account id is sealed with the credentials, so the other
    workspaces' connections of this provider are unsealed to compare (a connect is rare)."""
    rows = session.execute(
        select(Integration, Workspace.name)
        .join(Workspace, Workspace.id == Integration.workspace_id)
        .where(
            Integration.provider == info.slug,
            Integration.workspace_id != workspace_id,
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


def _account_to_keep(info: ProviderInfo, outcome: ConnectionTest) -> str | None:
    """The account id to seal with the credentials, for providers whose accounts are one
    workspace's each."""
    if outcome.ok and info.one_workspace_per_account and outcome.account.get("id"):
        return str(outcome.account["id"])
    return None


def _refuse_shared_account(
    session: Session, *, workspace_id: int, info: ProviderInfo, outcome: ConnectionTest
) -> str | None:
    """Why this connection may not be saved (its account belongs to another workspace)."""
    account_id = _account_to_keep(info, outcome)
    if account_id is None:
        return None
    other = _connected_elsewhere(
        session, workspace_id=workspace_id, info=info, account_id=account_id
    )
    if other is None:
        return None
    return (
        f"This {info.name} account ({account_id}) is already connected to the workspace "
        f"“{other}”. Each business connects its own {info.name} account: paste this "
        f"workspace's own key, or disconnect {info.name} in “{other}” first."
    )


def _masked_secrets(model: type[BaseModel], plain: Mapping[str, Any]) -> dict[str, str]:
    return {name: mask(str(plain[name])) for name in secret_fields(model) if plain.get(name)}


# -- the operations ---------------------------------------------------------------------------


def connect_with_keys(
    session: Session,
    *,
    actor: Actor,
    provider_slug: str,
    credentials: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
    save_inactive: bool = False,
    context: ProviderContext,
    catalog: Catalog | None = None,
) -> ConnectResult:
    """Connect (or update) ``provider_slug`` with keys an owner pasted.

    Checks the role and the plan, the keys' shape, then tests them against the provider. A
    failed test saves nothing unless ``save_inactive`` (kept inactive with the error shown).
    Secrets left blank keep their stored values.
    """
    actor.require_owner("connect integrations")
    prov = provider(provider_slug, catalog)
    info = prov.info
    check_tier(session, workspace_id=actor.workspace_id, info=info, catalog=catalog)
    existing = find(session, workspace_id=actor.workspace_id, provider_slug=info.slug)
    stored: dict[str, Any] = {}
    if existing is not None:
        try:
            stored = credentials_of(existing)
        except CryptoError:
            stored = {}  # unreadable: the form must supply everything again
    merged = _merge_blank_secrets(credentials, stored, prov.credentials_model)
    creds = _validated(prov.credentials_model, merged, "Credentials")
    base_settings = dict(existing.settings) if existing is not None and settings is None else {}
    settings_model = _validated(
        prov.settings_model, settings if settings is not None else base_settings, "Settings"
    )
    try:
        prov.check_credentials(creds, context)
    except InvalidCredentials as exc:
        raise InvalidInput(str(exc), field=exc.field) from None
    outcome, log = _run_test(
        session,
        workspace_id=actor.workspace_id,
        integration_id=existing.id if existing is not None else None,
        prov=prov,
        call=lambda: prov.test_connection(creds, settings_model, context),
    )
    plain = _plain(creds)
    masked = _masked_secrets(prov.credentials_model, plain)
    if refused := _refuse_shared_account(
        session, workspace_id=actor.workspace_id, info=info, outcome=outcome
    ):
        return ConnectResult(False, False, refused, latency_ms=outcome.latency_ms, masked=masked)
    if account_id := _account_to_keep(info, outcome):
        plain[ACCOUNT_KEY] = account_id
    if not outcome.ok and not save_inactive:
        return ConnectResult(
            False, False, outcome.message, latency_ms=outcome.latency_ms, masked=masked
        )
    row = existing or _get_or_create(session, workspace_id=actor.workspace_id, info=info)
    log.integration_id = row.id
    _store(row, plain, settings_model)
    now = utcnow()
    row.last_checked_at = now
    if outcome.ok:
        row.status = IntegrationStatus.ACTIVE
        row.last_error = None
        row.connected_at = now
        stripe_webhook_setup.request_if_needed(session, row)
    else:
        row.status = IntegrationStatus.INACTIVE
        row.last_error = outcome.message
    audit.record(
        session,
        actor=actor,
        action="integration.update" if existing is not None else "integration.connect",
        target=f"integration:{info.slug}",
        details={
            "status": row.status.value,
            "method": "api_key",
            "test": "ok" if outcome.ok else "failed",
            "masked": masked,
            "account_id": outcome.account.get("id"),
        },
    )
    return ConnectResult(
        outcome.ok,
        True,
        outcome.message,
        status=row.status,
        latency_ms=outcome.latency_ms,
        account=outcome.account,
        masked=masked,
    )


def _store(row: Integration, plain: dict[str, Any], settings_model: BaseModel) -> None:
    credentials.seal(row, plain)
    row.settings = settings_model.model_dump(mode="json")


def credentials_of(integration: Integration) -> dict[str, Any]:
    """The integration's stored secrets (for services that call the provider). CryptoError if
    unreadable; never log or return the result to a browser."""
    return credentials.unseal(integration)


def store_tokens(
    session: Session,
    *,
    actor: Actor,
    provider_slug: str,
    secrets: dict[str, Any],
    context: ProviderContext,
    catalog: Catalog | None = None,
    tester: Tester | None = None,
) -> ConnectResult:
    """Save credentials an OAuth flow obtained (tier-checked, tested, sealed). Used by the
    OAuth service after a callback; the row is saved even when the test fails, as the tokens
    are real and a later test may pass (the tile shows the error). ``tester`` tests tokens the
    provider's key form does not describe."""
    actor.require_owner("connect integrations")
    prov = provider(provider_slug, catalog)
    info = prov.info
    check_tier(session, workspace_id=actor.workspace_id, info=info, catalog=catalog)
    existing = find(session, workspace_id=actor.workspace_id, provider_slug=info.slug)
    # Tested before anything is written: the test's throttle takes its token in a transaction
    # of its own, which on SQLite would wait behind this one's write lock.
    outcome, log = _test_stored(
        session,
        workspace_id=actor.workspace_id,
        row=existing,
        prov=prov,
        secrets=secrets,
        context=context,
        tester=tester,
    )
    masked = {k: mask(str(v)) for k, v in secrets.items() if k in _SECRET_TOKEN_KEYS and v}
    if refused := _refuse_shared_account(
        session, workspace_id=actor.workspace_id, info=info, outcome=outcome
    ):
        return ConnectResult(False, False, refused, latency_ms=outcome.latency_ms, masked=masked)
    if account_id := _account_to_keep(info, outcome):
        secrets = {**secrets, ACCOUNT_KEY: account_id}
    row = existing or _get_or_create(session, workspace_id=actor.workspace_id, info=info)
    log.integration_id = row.id
    settings_model = _validated(prov.settings_model, row.settings or {}, "Settings")
    credentials.seal(row, secrets)
    row.settings = settings_model.model_dump(mode="json")
    now = utcnow()
    row.last_checked_at = now
    row.connected_at = now
    row.status = IntegrationStatus.ACTIVE if outcome.ok else IntegrationStatus.ERROR
    row.last_error = None if outcome.ok else outcome.message
    stripe_webhook_setup.request_if_needed(session, row)
    details = {
        "status": row.status.value,
        "method": "oauth",
        "test": "ok" if outcome.ok else "failed",
        "masked": masked,
        "account_id": outcome.account.get("id") or secrets.get("stripe_user_id"),
    }
    if not outcome.ok:
        details["error"] = outcome.message[:500]
    audit.record(
        session,
        actor=actor,
        action="integration.update" if existing is not None else "integration.connect",
        target=f"integration:{info.slug}",
        details=details,
    )
    return ConnectResult(
        outcome.ok,
        True,
        outcome.message,
        status=row.status,
        latency_ms=outcome.latency_ms,
        account=outcome.account,
        masked=masked,
    )


_SECRET_TOKEN_KEYS = frozenset({"secret_key", "access_token", "refresh_token"})


def _test_stored(
    session: Session,
    *,
    workspace_id: int,
    row: Integration | None,
    prov: Provider,
    secrets: dict[str, Any],
    context: ProviderContext,
    tester: Tester | None = None,
) -> tuple[ConnectionTest, IntegrationLog]:
    """Test with stored-shape secrets. Fields the provider's form does not know (OAuth's
    refresh token, the account id) are ignored by pydantic; missing ones make a failed test.
    With ``tester``, it tests them instead of the provider's key-form test."""
    if tester is not None:
        return _run_test(
            session,
            workspace_id=workspace_id,
            integration_id=row.id if row is not None else None,
            prov=prov,
            call=lambda: tester(secrets),
        )
    try:
        creds = prov.credentials_model.model_validate(dict(secrets))
        settings_model = prov.settings_model.model_validate(
            row.settings if row is not None and row.settings else {}
        )
    except ValidationError as exc:
        names = ", ".join(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
        message = f"The stored credentials are incomplete ({names}); reconnect."
        log = IntegrationLog(
            workspace_id=workspace_id,
            integration_id=row.id if row is not None else None,
            provider=prov.info.slug,
            operation=TEST_OPERATION,
            status="error",
            latency_ms=0,
            error=message,
            at=utcnow(),
        )
        session.add(log)
        return ConnectionTest(False, message, 0), log
    return _run_test(
        session,
        workspace_id=workspace_id,
        integration_id=row.id if row is not None else None,
        prov=prov,
        call=lambda: prov.test_connection(creds, settings_model, context),
    )


def test(
    session: Session,
    *,
    actor: Actor,
    provider_slug: str,
    context: ProviderContext,
    catalog: Catalog | None = None,
    tester: Tester | None = None,
) -> ConnectResult:
    """ "Test connection" on a stored integration (owners and admins).

    A pass turns an ERROR row ACTIVE (audited) and releases the jobs waiting on it; only a
    refused credential turns an ACTIVE row ERROR: an outage leaves it ACTIVE and says so
    (provider_status). A test never activates an INACTIVE row: that is a connect, which checks
    the role and the plan.
    ``tester`` tests OAuth tokens; tokens it renewed are stored.
    """
    actor.require_change("test connections")
    prov = provider(provider_slug, catalog)
    row = _required(session, workspace_id=actor.workspace_id, provider_slug=prov.info.slug)
    try:
        secrets = credentials_of(row)
    except CryptoError:
        message = (
            "The stored credentials cannot be decrypted (their key is no longer in "
            "HUB_CREDENTIAL_KEYS); paste the keys again."
        )
        outcome = ConnectionTest(False, message, 0)
    else:
        if not secrets:
            raise InvalidInput(f"{prov.info.name} has no stored credentials; connect it first.")
        before = dict(secrets)
        outcome, _ = _test_stored(
            session,
            workspace_id=row.workspace_id,
            row=row,
            prov=prov,
            secrets=secrets,
            context=context,
            tester=tester,
        )
        if account_id := _account_to_keep(prov.info, outcome):
            # Connections made before the account id was kept learn it here, unless another
            # workspace already has that account: then neither is silently taken for its owner,
            # and the operator is told (the account is shared until one disconnects it).
            other = _connected_elsewhere(
                session, workspace_id=row.workspace_id, info=prov.info, account_id=account_id
            )
            if other is None:
                secrets[ACCOUNT_KEY] = account_id
            else:
                outcome = replace(
                    outcome,
                    message=f"{outcome.message} Warning: this {prov.info.name} account "
                    f"({account_id}) is also connected to the workspace “{other}”. Each "
                    f"business connects its own: disconnect it where it does not belong.",
                )
        if secrets != before:
            credentials.seal(row, secrets)
    row.last_checked_at = utcnow()
    message = outcome.message
    if outcome.ok:
        provider_status.succeeded(
            session, workspace_id=row.workspace_id, provider=row.provider, actor=actor
        )
    elif row.status is IntegrationStatus.INACTIVE:
        row.last_error = outcome.message
    else:
        # No adapter error: the stored credentials themselves are unusable (undecryptable,
        # incomplete): the operator must act, as for a refused key.
        error = outcome.error or ProviderAuthFailed(outcome.message)
        failure = provider_status.failed(
            session, workspace_id=row.workspace_id, provider=row.provider, error=error, actor=actor
        )
        if failure is not Failure.REFUSED_CREDENTIAL:
            # An outage, a timeout, a 5xx, a rate limit: not the key's fault. It stays
            # connected, and the operator is told what the provider did.
            row.last_error = describe(error)
            message = (
                f"{prov.info.name} is unavailable right now ({outcome.message.rstrip('.')}). "
                f"The connection is kept: queued work waits and runs when {prov.info.name} "
                "answers again."
            )
    return ConnectResult(
        outcome.ok,
        True,
        message,
        status=row.status,
        latency_ms=outcome.latency_ms,
        account=outcome.account,
        masked=masked_view(row, catalog),
    )


def disconnect(
    session: Session,
    *,
    actor: Actor,
    provider_slug: str,
    revoke: Revoke | None = None,
) -> Integration:
    """Forget the credentials (the row, its history and its invoices stay), after asking the
    provider to revoke them where that exists (``revoke`` gets the stored secrets; its failure
    is noted in the audit row, not raised: the owner wants the keys gone either way)."""
    actor.require_owner("disconnect integrations")
    row = _required(session, workspace_id=actor.workspace_id, provider_slug=provider_slug)
    revoked = "not_applicable"
    if revoke is not None:
        try:
            secrets = credentials_of(row)
        except CryptoError:
            secrets = {}
        if secrets:
            try:
                revoke(secrets)
                revoked = "ok"
            except ProviderError as exc:
                revoked = f"failed: {exc}"
    row.credentials_enc = None
    row.key_id = None
    row.status = IntegrationStatus.INACTIVE
    row.last_error = None
    audit.record(
        session,
        actor=actor,
        action="integration.disconnect",
        target=f"integration:{provider_slug}",
        details={"revoked": revoked},
    )
    return row


def update_settings(
    session: Session,
    *,
    actor: Actor,
    provider_slug: str,
    settings: Mapping[str, Any],
    catalog: Catalog | None = None,
) -> Integration:
    """Change an integration's non-secret settings (owners and admins), validated by the
    provider's settings model."""
    actor.require_change("change integration settings")
    prov = provider(provider_slug, catalog)
    row = _required(session, workspace_id=actor.workspace_id, provider_slug=prov.info.slug)
    model = _validated(prov.settings_model, {**(row.settings or {}), **settings}, "Settings")
    before = dict(row.settings or {})
    row.settings = model.model_dump(mode="json")
    changed = sorted(k for k in row.settings if before.get(k) != row.settings[k])
    audit.record(
        session,
        actor=actor,
        action="integration.settings",
        target=f"integration:{prov.info.slug}",
        details={"changed": changed},
    )
    return row


def view(
    session: Session, workspace_id: int, catalog: Catalog | None = None
) -> list[ConnectionView]:
    """Every provider in the registry with this workspace's row and plan: one tile each."""
    plan = _workspace(session, workspace_id).plan
    rows = {row.provider: row for row in list_connections(session, workspace_id=workspace_id)}
    out = []
    for prov in (catalog or registry()).providers():
        info = prov.info
        row = rows.get(info.slug)
        needed = tiers.required_plan(info)
        state, locked_reason = _state(plan, info, row)
        out.append(
            ConnectionView(
                slug=info.slug,
                name=info.name,
                category=str(info.category.value),
                description=info.description,
                logo=info.logo,
                state=state,
                status=row.status.value if row is not None else None,
                required_plan=needed.value,
                locked_reason=locked_reason,
                methods=tuple(m.value for m in info.methods),
                payment_provider=info.payment_provider,
                last_checked_at=row.last_checked_at if row is not None else None,
                last_error=row.last_error if row is not None else None,
                connected_at=row.connected_at if row is not None else None,
                masked=masked_view(row, catalog) if row is not None else {},
                settings=dict(row.settings or {}) if row is not None else {},
                docs_url=info.docs_url,
            )
        )
    return out


def _state(plan: Plan, info: ProviderInfo, row: Integration | None) -> tuple[str, str]:
    if not info.available:
        return "coming_soon", ""
    if row is not None and row.status is IntegrationStatus.ACTIVE:
        return "connected", ""
    if row is not None and row.status is IntegrationStatus.ERROR:
        return "error", ""
    if not tiers.plan_allows(plan, info):
        needed = tiers.required_plan(info)
        return "locked", f"{info.name} needs the {needed.value.title()} plan."
    return "connect", ""


def list_connections(session: Session, *, workspace_id: int) -> list[Integration]:
    stmt = (
        select(Integration)
        .where(Integration.workspace_id == workspace_id)
        .order_by(Integration.provider)
    )
    return list(session.scalars(stmt))
