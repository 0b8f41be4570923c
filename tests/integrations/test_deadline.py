"""Every adapter's call has a total deadline: against a server that drips its answer one byte
every half second for a minute (each byte restarts the clients' read timeouts), a call given
three seconds fails with the adapter's "unavailable" error, ``ProviderTimeout``, long before the
drip ends. The bound checked is generous on purpose (a loaded machine), but a per-read timeout
would never end the call at all."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from backend.integrations import google_drive
from backend.integrations.base import ProviderContext
from backend.integrations.deadline import watch, within
from backend.integrations.errors import ProviderTimeout, ProviderUnavailable
from backend.integrations.messenger import MessengerAdapter
from backend.integrations.outbound_webhooks import WebhooksAdapter, generate_secret
from backend.integrations.sendgrid import SendGridAdapter
from backend.integrations.slack import SlackAdapter
from backend.integrations.stripe import StripeAdapter, StripeEndpoints
from backend.integrations.zoho_books import ZohoBooksAdapter, ZohoBooksCredentials, ZohoEndpoints
from tests.support.drip import Drip, dripping_server

SECONDS = 3.0
# Far below the drip's minute, far above the deadline: a loaded machine stays inside it.
BOUND = 20.0


@pytest.fixture
def drip() -> Iterator[Drip]:
    with dripping_server(interval=0.5, duration=60.0) as running:
        yield running


def _service_account() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "client_email": "hub@drip.iam.gserviceaccount.com",
        "private_key": pem,
        "private_key_id": "k1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def _zoho(drip: Drip) -> ZohoBooksAdapter:
    creds = ZohoBooksCredentials(
        client_id="1000.ABC",
        client_secret=SecretStr("s"),
        refresh_token=SecretStr("1000.ab.cd"),
        organization_id="1",
    )
    return ZohoBooksAdapter(creds, ZohoEndpoints(drip.url, drip.url), seconds=SECONDS)


def _google_client() -> google_drive.OAuthClient:
    return google_drive.OAuthClient("client.apps.googleusercontent.com", "secret")


def _context(drip: Drip) -> ProviderContext:
    return ProviderContext(live=False, sandbox_url=drip.url)


def _drive(drip: Drip) -> google_drive.GoogleDriveAdapter:
    return google_drive.GoogleDriveAdapter.from_service_account(
        _service_account(), _context(drip), seconds=SECONDS
    )


CALLS: dict[str, Callable[[Drip], object]] = {
    "stripe (SDK over httpx)": lambda d: StripeAdapter(
        "sk_test_drip", endpoints=StripeEndpoints(api=d.url, connect=d.url), timeout=SECONDS
    ).account(),
    "sendgrid (SDK over urllib)": lambda d: SendGridAdapter(
        "SG.drip", host=d.url, seconds=SECONDS
    ).scopes(),
    "sendgrid mail (SDK over urllib)": lambda d: SendGridAdapter(
        "SG.drip", host=d.url, seconds=SECONDS
    ).send_mail(from_email="a@shop.test", to=["b@shop.test"], subject="s", text="t"),
    "slack": lambda d: SlackAdapter("xoxb-drip", base_url=d.url, seconds=SECONDS).auth_test(),
    "messenger": lambda d: MessengerAdapter("EAA" + "d" * 30, base_url=d.url, seconds=SECONDS).me(),
    "zoho books": lambda d: _zoho(d).organizations(),
    "outbound webhook": lambda d: WebhooksAdapter(
        [generate_secret()], d.url, context=_context(d), seconds=SECONDS
    ).deliver("ping", {}, msg_id="msg_drip"),
    "google drive (SDK over httplib2)": lambda d: _drive(d).probe(),
    "google code exchange": lambda d: google_drive.exchange_code(
        _google_client(), code="c", redirect_uri="http://x", context=_context(d), seconds=SECONDS
    ),
    "google token renewal (google-auth over httplib2)": lambda d: google_drive.refresh(
        _google_client(), refresh_token="1//r", context=_context(d), seconds=SECONDS
    ),
    "google revocation": lambda d: google_drive.revoke(
        "1//r", context=_context(d), seconds=SECONDS
    ),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_dripping_answer_ends_at_the_deadline_as_unavailable(drip: Drip, call: str) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderTimeout, match=f"did not answer within {SECONDS:g} s") as caught:
        CALLS[call](drip)
    elapsed = time.monotonic() - started
    assert isinstance(caught.value, ProviderUnavailable)  # an outage: the integration stays
    assert drip.requests >= 1 and drip.finished == 0  # it reached the server, which was cut off
    assert elapsed < BOUND, f"{call} took {elapsed:.1f} s against a {SECONDS:g} s deadline"


def test_an_inner_deadline_cannot_outlast_its_outer_one(drip: Drip) -> None:
    """A connection test bounds all its requests: each request's own, longer deadline is cut
    to what is left of the test's."""
    started = time.monotonic()
    with pytest.raises(ProviderTimeout, match="within 3 s"), within("Slack", SECONDS):
        SlackAdapter("xoxb-drip", base_url=drip.url, seconds=60).auth_test()
    assert time.monotonic() - started < BOUND


def test_a_socket_opened_after_the_deadline_is_shut_at_once() -> None:
    """A client that retries on a fresh connection after the cut cannot start again."""
    left, right = socket.socketpair()
    with pytest.raises(ProviderTimeout), within("Slack", 0.01) as deadline:
        while not deadline.expired:
            time.sleep(0.01)
        watch(left)
        assert left.recv(1) == b""  # shut down: the end of the stream, at once
        raise OSError("the client's error")
    left.close()
    right.close()


def test_a_proxy_named_by_the_environment_is_bound_by_the_deadline_too(
    drip: Drip, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx builds a transport of its own for a proxy it finds in the environment: ours
    replaces it, so a proxy that drips is cut off like a provider that does."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", drip.url)
    started = time.monotonic()
    with pytest.raises(ProviderTimeout, match="Slack did not answer within 3 s"):
        SlackAdapter("xoxb-drip", base_url="http://slack.invalid/api", seconds=SECONDS).auth_test()
    assert drip.requests == 1 and time.monotonic() - started < BOUND
