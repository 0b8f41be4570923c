"""Outbound webhooks through the connection service, with the real provider: a URL whose host
resolves to an address that is not public is refused at connect (nothing saved) and at a later
"Test connection" (the name may have changed its answer since: issue 13, item 10). The services
take the Engine and commit in steps (docs/security/transactions.md): what a test arranged is
committed first (``in_steps``)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.connections import service as connections
from backend.integrations import call_log
from backend.integrations.base import ProviderContext
from backend.integrations.outbound_webhooks import generate_secret
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput
from models import Integration, IntegrationStatus, Plan, Role
from tests import factories
from tests.support.servers import WebhookReceiver
from tests.support.steps import in_steps

NAME = "hooks.shop.test"


def _owner(session: Session) -> Actor:
    ws = factories.workspace(session, plan=Plan.BUSINESS)
    return Actor(operator_id=1, workspace_id=ws.id, role=Role.OWNER)


def _resolving(address: str, *, live: bool) -> ProviderContext:
    return ProviderContext(live=live, sandbox_url=None, resolve=lambda host, port: [address])


def test_a_url_resolving_to_a_private_address_is_refused_at_connect_and_nothing_is_saved(
    session: Session,
) -> None:
    actor = _owner(session)
    # The provider's check of the settings on connect: refused naming the field, before the
    # connection test is run (none logged).
    with pytest.raises(InvalidInput) as refused:
        in_steps(
            session,
            lambda engine: connections.connect_with_keys(
                engine,
                actor=actor,
                provider_slug="webhooks",
                credentials={"signing_secret": generate_secret()},
                settings={"url": f"https://{NAME}/in"},
                context=_resolving("10.0.0.5", live=True),
            ),
        )
    assert str(refused.value) == (
        f"{NAME} resolves to 10.0.0.5, a private address: webhooks must go to a public address."
    )
    assert refused.value.field == "url"
    assert session.scalars(select(Integration)).all() == []
    assert len(call_log.BUFFER) == 0  # refused before any request


def test_a_name_that_turns_private_after_connecting_fails_the_test_and_turns_the_row_error(
    session: Session, receiver: WebhookReceiver
) -> None:
    actor = _owner(session)
    port = urlsplit(receiver.url).port
    connected = in_steps(
        session,
        lambda engine: connections.connect_with_keys(
            engine,
            actor=actor,
            provider_slug="webhooks",
            credentials={"signing_secret": generate_secret()},
            settings={"url": f"http://{NAME}:{port}/in"},
            # Sandbox mode: the receiver on loopback is allowed, reached by the name's answer.
            context=_resolving("127.0.0.1", live=False),
        ),
    )
    assert connected.ok, connected.message
    assert len(receiver.wait_for(1)) == 1

    result = in_steps(
        session,
        lambda engine: connections.test(
            engine,
            actor=actor,
            provider_slug="webhooks",
            context=_resolving("169.254.169.254", live=False),
        ),
    )
    assert not result.ok
    assert result.message == (
        f"{NAME} resolves to 169.254.169.254, a cloud metadata address: "
        "webhooks must go to a public address."
    )
    row = session.scalars(select(Integration)).one()
    # The operator must change the URL: like a refused key, not like an outage.
    assert row.status is IntegrationStatus.ERROR
    assert len(receiver.received) == 1
