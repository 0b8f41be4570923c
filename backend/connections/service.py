"""A workspace's connections to providers, the operations: connect with keys (checked,
tested, sealed), store an OAuth flow's tokens, test, update settings, disconnect.

The operations that call a provider take the Engine and run in steps: a short transaction
reads what the call needs, the provider is called with none open, and a new short one writes
the outcome (docs/security/transactions.md). How a test is run and logged is in ``testing``.

Secrets only travel inward: they are sealed before they are stored, never put in an audit row,
a log line or an exception, and what comes back to the console is a masked last four. What the
console shows is in ``views``; secret fields and masks in ``masks``; rows and the checks made
before writing one in ``rows``; which providers exist in ``catalog``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.connections import credentials, facts, provider_status, stripe_webhook_setup, testing
from backend.connections.catalog import Catalog, provider
from backend.connections.masks import (
    mask,
    masked_secrets,
    masked_view,
    merge_blank_secrets,
    plain_values,
    validated,
)
from backend.connections.rows import (
    ACCOUNT_KEY,
    account_to_keep,
    check_tier,
    claim_account,
    find,
    learn_account,
    refuse_shared_account,
    release_account,
    required,
)
from backend.connections.views import ConnectResult
from backend.db import session_scope
from backend.integrations import call_log
from backend.integrations.base import ConnectionTest, Provider, ProviderContext, ProviderInfo
from backend.integrations.errors import ProviderAuthFailed, ProviderError
from backend.platform import audit
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput
from backend.platform.provider_failures import Failure, describe
from backend.security.crypto import CryptoError
from models import Integration, IntegrationStatus, utcnow

Tester = testing.Tester
Revoke = Callable[[dict[str, Any]], None]
UNREADABLE = (
    "The stored credentials cannot be decrypted (their key is no longer in "
    "HUB_CREDENTIAL_KEYS); paste the keys again."
)
CHANGED_MEANWHILE = (
    "The connection changed while it was being tested (disconnected, or connected again with "
    "other keys): test it again."
)


def _stored_secrets(row: Integration | None) -> dict[str, Any]:
    if row is None:
        return {}
    try:
        return credentials_of(row)
    except CryptoError:
        return {}  # unreadable: the form must supply everything again


@dataclass(frozen=True)
class _Claimed:
    existing: Integration | None
    row: Integration
    account_id: str | None


def _recheck_and_claim(
    session: Session,
    *,
    actor: Actor,
    info: ProviderInfo,
    catalog: Catalog | None,
    outcome: ConnectionTest,
    masked: dict[str, str],
    keep_failed: bool = True,
) -> _Claimed | ConnectResult:
    """The write after a connection's test, first step: what may have changed while the
    provider answered (the plan, the row, another workspace taking the same account) is
    checked again, and the row is claimed; a ConnectResult says why nothing is saved."""
    check_tier(session, workspace_id=actor.workspace_id, info=info, catalog=catalog)
    existing = find(session, workspace_id=actor.workspace_id, provider_slug=info.slug)
    if refused := refuse_shared_account(
        session, workspace_id=actor.workspace_id, info=info, outcome=outcome
    ):
        return ConnectResult(False, False, refused, latency_ms=outcome.latency_ms, masked=masked)
    account_id = account_to_keep(info, outcome)
    if not outcome.ok and not keep_failed:
        return ConnectResult(
            False, False, outcome.message, latency_ms=outcome.latency_ms, masked=masked
        )
    # Held while connected: None after a failed test, or where accounts are not one's own.
    row = claim_account(
        session,
        workspace_id=actor.workspace_id,
        info=info,
        account_id=account_id,
        existing=existing,
    )
    if isinstance(row, str):
        return ConnectResult(False, False, row, latency_ms=outcome.latency_ms, masked=masked)
    return _Claimed(existing, row, account_id)


def connect_with_keys(
    engine: Engine,
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

    Checks the role and the plan, the keys' shape (and the settings, when given), then tests
    them against the provider. A failed test saves nothing unless ``save_inactive`` (kept
    inactive with the error shown). Secrets left blank keep their stored values.

    Three steps, so that no transaction is open while the provider answers: what the test
    needs is read, the provider is called, then the outcome is written in a new transaction
    that looks again at what may have changed meanwhile (the plan, the row, the account).
    """
    actor.require_owner("connect integrations")
    prov = provider(provider_slug, catalog)
    info = prov.info
    with session_scope(engine) as session:
        check_tier(session, workspace_id=actor.workspace_id, info=info, catalog=catalog)
        existing = find(session, workspace_id=actor.workspace_id, provider_slug=info.slug)
        stored = _stored_secrets(existing)
        base_settings = dict(existing.settings or {}) if existing is not None else {}
    merged = merge_blank_secrets(credentials, stored, prov.credentials_model)
    creds = validated(prov.credentials_model, merged, "Credentials")
    settings_model = validated(
        prov.settings_model, settings if settings is not None else base_settings, "Settings"
    )
    testing.check_credentials(prov, creds, context)
    if settings is not None:
        testing.check_settings(prov, settings_model, context)
    with call_log.scope(
        workspace_id=actor.workspace_id,
        integration_id=existing.id if existing is not None else None,
    ):
        outcome = testing.run(lambda: prov.test_connection(creds, settings_model, context))
    plain = plain_values(creds)
    masked = masked_secrets(prov.credentials_model, plain)
    with session_scope(engine) as session:
        claimed = _recheck_and_claim(
            session,
            actor=actor,
            info=info,
            catalog=catalog,
            outcome=outcome,
            masked=masked,
            keep_failed=save_inactive,
        )
        if isinstance(claimed, ConnectResult):
            return claimed
        existing, row = claimed.existing, claimed.row
        if claimed.account_id:
            plain[ACCOUNT_KEY] = claimed.account_id
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
    # Pasted keys replace any grant: what the hub learnt about that one goes (facts.py).
    row.settings = settings_model.model_dump(mode="json")


def credentials_of(integration: Integration) -> dict[str, Any]:
    """The integration's stored secrets (for services that call the provider). CryptoError if
    unreadable; never log or return the result to a browser."""
    return credentials.unseal(integration)


def store_tokens(
    engine: Engine,
    *,
    actor: Actor,
    provider_slug: str,
    secrets: dict[str, Any],
    context: ProviderContext,
    catalog: Catalog | None = None,
    tester: Tester | None = None,
    learnt: Mapping[str, Any] | None = None,
) -> ConnectResult:
    """Save credentials an OAuth flow obtained (tier-checked, tested, sealed). Used by the
    OAuth service after a callback; the row is saved even when the test fails, as the tokens
    are real and a later test may pass (the tile shows the error). ``tester`` tests tokens the
    provider's key form does not describe. ``learnt``: what the flow told about the grant, not
    secret (``facts``: Google's end of it), replacing what a previous grant told. Read, test,
    write, as ``connect_with_keys``."""
    actor.require_owner("connect integrations")
    prov = provider(provider_slug, catalog)
    info = prov.info
    with session_scope(engine) as session:
        check_tier(session, workspace_id=actor.workspace_id, info=info, catalog=catalog)
        existing = find(session, workspace_id=actor.workspace_id, provider_slug=info.slug)
        stored_settings = dict(existing.settings or {}) if existing is not None else {}
    with call_log.scope(
        workspace_id=actor.workspace_id,
        integration_id=existing.id if existing is not None else None,
    ):
        outcome = testing.stored(prov, secrets, stored_settings, context, tester)
    masked = {k: mask(str(v)) for k, v in secrets.items() if k in _SECRET_TOKEN_KEYS and v}
    with session_scope(engine) as session:
        claimed = _recheck_and_claim(
            session, actor=actor, info=info, catalog=catalog, outcome=outcome, masked=masked
        )
        if isinstance(claimed, ConnectResult):
            return claimed
        existing, row = claimed.existing, claimed.row
        if claimed.account_id:
            secrets = {**secrets, ACCOUNT_KEY: claimed.account_id}
        settings_model = validated(prov.settings_model, row.settings or {}, "Settings")
        credentials.seal(row, secrets)
        row.settings = facts.replaced(settings_model.model_dump(mode="json"), learnt or {})
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


def test(
    engine: Engine,
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
    The stored secrets are read, tested with no transaction open, and the outcome written in a
    new transaction; a row whose credentials changed meanwhile keeps what it has.
    """
    actor.require_change("test connections")
    prov = provider(provider_slug, catalog)
    with session_scope(engine) as session:
        row = required(session, workspace_id=actor.workspace_id, provider_slug=prov.info.slug)
        sealed, row_settings, row_id = row.credentials_enc, dict(row.settings or {}), row.id
        try:
            secrets: dict[str, Any] | None = credentials_of(row)
        except CryptoError:
            secrets = None
    if secrets is None:
        outcome = ConnectionTest(False, UNREADABLE, 0)
    elif not secrets:
        raise InvalidInput(f"{prov.info.name} has no stored credentials; connect it first.")
    else:
        before = dict(secrets)
        with call_log.scope(workspace_id=actor.workspace_id, integration_id=row_id):
            outcome = testing.stored(prov, secrets, row_settings, context, tester)
    with session_scope(engine) as session:
        row = required(session, workspace_id=actor.workspace_id, provider_slug=prov.info.slug)
        if row.credentials_enc != sealed:
            return ConnectResult(
                False,
                True,
                CHANGED_MEANWHILE,
                status=row.status,
                latency_ms=outcome.latency_ms,
                masked=masked_view(row, catalog),
            )
        if secrets is not None:
            outcome = _keep_what_the_test_learnt(session, row, prov, outcome, secrets, before)
        return _apply_test(session, row, prov, outcome, actor, catalog)


def _keep_what_the_test_learnt(
    session: Session,
    row: Integration,
    prov: Provider,
    outcome: ConnectionTest,
    secrets: dict[str, Any],
    before: dict[str, Any],
) -> ConnectionTest:
    """Seal what a passing test taught: the account the keys reach, tokens it renewed."""
    if account_id := account_to_keep(prov.info, outcome):
        # Connections made before the account id was kept learn it here, unless another
        # workspace already has that account: then neither is silently taken for its owner,
        # and the operator is told (the account is shared until one disconnects it).
        other = learn_account(session, row=row, info=prov.info, account_id=account_id)
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
    return outcome


def _apply_test(
    session: Session,
    row: Integration,
    prov: Provider,
    outcome: ConnectionTest,
    actor: Actor,
    catalog: Catalog | None,
) -> ConnectResult:
    """What a test's outcome does to the row, and what the operator is told."""
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
    engine: Engine,
    *,
    actor: Actor,
    provider_slug: str,
    revoke: Revoke | None = None,
) -> Integration:
    """Forget the credentials (the row, its history and its invoices stay), after asking the
    provider to revoke them where that exists (``revoke`` gets the stored secrets; its failure
    is noted in the audit row, not raised: the owner wants the keys gone either way). The
    provider is asked between two transactions: the secrets are read, revoked, then wiped."""
    actor.require_owner("disconnect integrations")
    with session_scope(engine) as session:
        row = required(session, workspace_id=actor.workspace_id, provider_slug=provider_slug)
        secrets = _stored_secrets(row) if revoke is not None else {}
        row_id = row.id
    revoked = "not_applicable"
    if revoke is not None and secrets:
        try:
            with call_log.scope(workspace_id=actor.workspace_id, integration_id=row_id):
                revoke(secrets)
            revoked = "ok"
        except ProviderError as exc:
            revoked = f"failed: {exc}"
    with session_scope(engine) as session:
        row = required(session, workspace_id=actor.workspace_id, provider_slug=provider_slug)
        row.credentials_enc = None
        row.key_id = None
        row.settings = facts.dropped(row.settings)  # they were about the grant that ended
        release_account(row)
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
    context: ProviderContext,
    catalog: Catalog | None = None,
) -> Integration:
    """Change an integration's non-secret settings (owners and admins), validated by the
    provider's settings model and checked by the provider (no call: a sender's shape, a URL)."""
    actor.require_change("change integration settings")
    prov = provider(provider_slug, catalog)
    row = required(session, workspace_id=actor.workspace_id, provider_slug=prov.info.slug)
    model = validated(prov.settings_model, {**(row.settings or {}), **settings}, "Settings")
    testing.check_settings(prov, model, context)
    before = dict(row.settings or {})
    row.settings = facts.kept(before, model.model_dump(mode="json"))
    changed = sorted(k for k in row.settings if before.get(k) != row.settings[k])
    audit.record(
        session,
        actor=actor,
        action="integration.settings",
        target=f"integration:{prov.info.slug}",
        details={"changed": changed},
    )
    return row
