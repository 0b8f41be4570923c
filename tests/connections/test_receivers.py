"""Finding who receives a webhook (``connections.receivers``): scoped to the workspace the path
names, only integrations that still receive, and the secret only when it can be used."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.connections import credentials, receivers
from backend.connections.receivers import NoReceiver
from backend.security.crypto import KeyRing, generate_key_entry
from models import Integration, IntegrationStatus
from tests import factories


def _integration(
    session: Session,
    workspace_id: int,
    provider: str,
    secrets: dict[str, Any] | None = None,
    *,
    status: IntegrationStatus = IntegrationStatus.ACTIVE,
    settings: dict[str, Any] | None = None,
) -> Integration:
    row = Integration(
        workspace_id=workspace_id,
        provider=provider,
        display_name=provider.title(),
        status=status,
        settings=settings or {},
    )
    session.add(row)
    session.flush()
    if secrets is not None:
        credentials.seal(row, secrets)
    return row


def _why(call: Any) -> str:
    with pytest.raises(NoReceiver) as raised:
        call()
    return raised.value.why


def test_a_workspace_slug_finds_its_own_integration_never_another_workspaces(
    engine: Engine, session: Session
) -> None:
    acme = factories.workspace(session, slug="acme")
    globex = factories.workspace(session, slug="globex")
    mine = _integration(session, acme.id, "stripe", {"webhook_signing_secret": "whsec_acme"})
    _integration(session, globex.id, "stripe", {"webhook_signing_secret": "whsec_globex"})
    _integration(session, globex.id, "zoho_books", {"webhook_secret": "zoho_globex"})
    session.commit()

    found = receivers.for_workspace(
        engine, slug="acme", providers=["stripe"], secret="webhook_signing_secret"
    )
    assert (found.workspace_id, found.integration_id, found.provider, found.secret) == (
        acme.id,
        mine.id,
        "stripe",
        "whsec_acme",
    )
    # Globex has Zoho; Acme does not: Acme's slug never reaches Globex's.
    assert (
        _why(lambda: receivers.for_workspace(engine, slug="acme", providers=["zoho_books"]))
        == "not_connected"
    )
    assert (
        _why(lambda: receivers.for_workspace(engine, slug="initech", providers=["stripe"]))
        == "unknown_workspace"
    )


def test_a_disconnected_integration_does_not_receive_and_one_in_error_still_does(
    engine: Engine, session: Session
) -> None:
    ws = factories.workspace(session, slug="acme")
    books = _integration(
        session, ws.id, "zoho_books", {"webhook_secret": "b"}, status=IntegrationStatus.INACTIVE
    )
    crm = _integration(
        session, ws.id, "zoho_crm", {"webhook_secret": "c"}, status=IntegrationStatus.ERROR
    )
    session.commit()

    # zoho_books comes first among the providers asked for, but is disconnected.
    found = receivers.for_workspace(
        engine, slug="acme", providers=["zoho_books", "zoho_crm"], secret="webhook_secret"
    )
    assert (found.integration_id, found.provider, found.secret) == (crm.id, "zoho_crm", "c")
    assert (
        _why(lambda: receivers.for_workspace(engine, slug="acme", providers=["zoho_books"]))
        == "not_connected"
    )
    assert _why(lambda: receivers.by_id(engine, books.id, secret="webhook_secret")) == (
        "unknown_integration"
    )
    assert receivers.by_id(engine, crm.id, secret="webhook_secret").secret == "c"


def test_the_first_receiving_provider_in_the_order_asked_wins(
    engine: Engine, session: Session
) -> None:
    ws = factories.workspace(session, slug="acme")
    _integration(session, ws.id, "zoho_books", {"webhook_secret": "b"})
    crm = _integration(session, ws.id, "zoho_crm", {"webhook_secret": "c"})
    session.commit()
    found = receivers.for_workspace(engine, slug="acme", providers=["zoho_crm", "zoho_books"])
    assert (found.integration_id, found.secret) == (crm.id, None)


def test_a_missing_or_empty_secret_is_not_configured_naming_the_integration(
    engine: Engine, session: Session
) -> None:
    ws = factories.workspace(session, slug="acme")
    row = _integration(session, ws.id, "zoho_books", {"webhook_secret": ""})
    session.commit()
    with pytest.raises(NoReceiver) as raised:
        receivers.for_workspace(
            engine, slug="acme", providers=["zoho_books"], secret="webhook_secret"
        )
    missing = raised.value
    assert (missing.why, missing.provider, missing.workspace_id, missing.key) == (
        "not_configured",
        "zoho_books",
        ws.id,
        "webhook_secret",
    )
    assert _why(lambda: receivers.by_id(engine, row.id, secret="signing_secrets")) == (
        "not_configured"
    )


def test_secrets_our_key_ring_cannot_open_are_not_configured_and_logged_without_them(
    engine: Engine, session: Session
) -> None:
    ws = factories.workspace(session, slug="acme")
    row = _integration(session, ws.id, "stripe")
    retired = KeyRing.parse(generate_key_entry("retired"))
    credentials.seal(row, {"webhook_signing_secret": "whsec_lost"}, ring=retired)
    session.commit()
    with structlog.testing.capture_logs() as logs:
        why = _why(
            lambda: receivers.for_workspace(
                engine, slug="acme", providers=["stripe"], secret="webhook_signing_secret"
            )
        )
    assert why == "not_configured"
    assert [entry for entry in logs if entry["event"] == "integration secrets unreadable"] == [
        {
            "event": "integration secrets unreadable",
            "log_level": "error",
            "provider": "stripe",
            "workspace": "acme",
            "integration_id": row.id,
        }
    ]
    assert "whsec_lost" not in repr(logs)


def test_without_a_secret_asked_for_the_settings_come_back_and_nothing_is_unsealed(
    engine: Engine, session: Session
) -> None:
    ws = factories.workspace(session, slug="acme")
    row = _integration(session, ws.id, "sendgrid", settings={"event_webhook_public_key": "MFkw..."})
    # Sealed with a key we do not hold: opening it would fail, so it must not be opened.
    credentials.seal(row, {"api_key": "SG.x"}, ring=KeyRing.parse(generate_key_entry("other")))
    session.commit()
    found = receivers.for_workspace(engine, slug="acme", providers=["sendgrid"])
    assert found.secret is None
    assert found.settings == {"event_webhook_public_key": "MFkw..."}


@pytest.mark.parametrize("slug", ["a" * 65, "ac\x00me", ""])
def test_slugs_no_workspace_can_have_are_unknown(
    engine: Engine, session: Session, slug: str
) -> None:
    factories.workspace(session, slug="acme")
    session.commit()
    assert _why(lambda: receivers.for_workspace(engine, slug=slug, providers=["stripe"])) == (
        "unknown_workspace"
    )


@pytest.mark.parametrize("integration_id", [0, -1, 2**31, 10**10])
def test_ids_out_of_range_are_unknown_integrations(engine: Engine, integration_id: int) -> None:
    assert _why(lambda: receivers.by_id(engine, integration_id, secret="signing_secrets")) == (
        "unknown_integration"
    )
