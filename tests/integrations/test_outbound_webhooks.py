"""Outbound webhooks: secrets, Standard Webhooks signatures (checked against the published test
vector and against the sidecar's own verifier), the signed ping to a real local receiver, and
where a webhook may go (issue 13, item 10): every address that is not public refused with the
reason, no redirect followed, the connection made to the address that was checked, with the
URL's name kept for Host and TLS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI, Response

from backend.integrations.base import InvalidCredentials, ProviderContext
from backend.integrations.errors import ProviderRejected, ProviderUnavailable
from backend.integrations.outbound_webhooks import (
    PROVIDER,
    WebhookCredentials,
    WebhooksAdapter,
    WebhookSettings,
    generate_secret,
    sign,
)
from backend.integrations.public_address import UnresolvedHost, system_resolver
from backend.security.webhooks import verify_standard
from tests.integrations.support import LIVE, OFFLINE
from tests.support.servers import Received, WebhookReceiver, serve, webhook_receiver
from tests.support.tls import issue

VECTOR = json.loads(Path("/work/shared/reference/webhook-vectors.json").read_text())[
    "standard_webhooks_hmac_sha256"
]


def verify(received: Received, secret: str, tolerance: int = 300) -> bool:
    """A receiver's check, written from the spec rather than from the code under test."""
    msg_id = received.headers["webhook-id"]
    timestamp = received.headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [
        value
        for version, _, value in (
            p.partition(",") for p in received.headers["webhook-signature"].split()
        )
        if version == "v1"
    ]
    return any(hmac.compare_digest(expected, value) for value in offered)


def creds(secret: str, previous: str | None = None) -> WebhookCredentials:
    return WebhookCredentials(
        signing_secret=secret,  # type: ignore[arg-type]
        previous_signing_secret=previous,  # type: ignore[arg-type]
    )


def test_generated_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    PROVIDER.check_credentials(creds(first), LIVE)


def test_sign_matches_the_standard_webhooks_vector() -> None:
    headers = sign(VECTOR["body"].encode(), VECTOR["id"], VECTOR["timestamp"], [VECTOR["secret"]])
    assert headers == {
        "webhook-id": VECTOR["id"],
        "webhook-timestamp": str(VECTOR["timestamp"]),
        "webhook-signature": VECTOR["signature"],
    }


def test_sign_during_rotation_carries_one_signature_per_secret() -> None:
    old, new = generate_secret(), generate_secret()
    headers = sign(b"{}", "msg_1", int(time.time()), [new, old])
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2 and all(e.startswith("v1,") for e in entries)
    for secret in (old, new):
        verify_standard(
            b"{}", "msg_1", headers["webhook-timestamp"], headers["webhook-signature"], [secret]
        )


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with whsec_"),
        ("whsec_not base64!", "not base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "too short (5 bytes"),
    ],
    ids=["no-prefix", "not-base64", "short"],
)
def test_malformed_secret_is_refused(secret: str, says: str) -> None:
    with pytest.raises(InvalidCredentials) as caught:
        PROVIDER.check_credentials(creds(secret), OFFLINE)
    assert caught.value.field == "signing_secret"
    assert says in str(caught.value)
    assert secret not in str(caught.value)


def test_the_vectors_24_byte_secret_is_long_enough() -> None:
    PROVIDER.check_credentials(creds(VECTOR["secret"]), LIVE)


# Answered by the system's resolver without asking any DNS server: literals (in any spelling
# it accepts, "2130706433" and "0x7f.1" too) and localhost (from /etc/hosts).
SYSTEM_ANSWERS = re.compile(r"^(localhost|[0-9a-fx.:]+)$", re.IGNORECASE)


def answering(table: dict[str, list[str]], *, live: bool = True) -> ProviderContext:
    """A context whose resolver answers the names in ``table``, literals and localhost as the
    system does, and no other name: no test here asks a DNS server."""

    def resolve(host: str, port: int) -> list[str]:
        if host in table:
            return table[host]
        if SYSTEM_ANSWERS.match(host):
            return system_resolver(host, port)
        raise UnresolvedHost(f"{host} could not be resolved: check the URL.")

    return ProviderContext(live=live, sandbox_url=None, resolve=resolve)


PUBLIC = "93.184.215.14"  # an internet address; nothing here connects to it
RESOLVES_PUBLIC = answering({"hooks.example.com": [PUBLIC]})
check_settings = PROVIDER.check_settings  # type: ignore[attr-defined]


def test_plain_http_is_refused_in_live_mode_even_on_this_machine() -> None:
    for url in ("http://hooks.example.com/in", "http://127.0.0.1:8080/in"):
        with pytest.raises(InvalidCredentials) as caught:
            check_settings(WebhookSettings(url=url), RESOLVES_PUBLIC)
        assert caught.value.field == "url"
        assert "https" in str(caught.value)
    check_settings(WebhookSettings(url="https://hooks.example.com/in"), RESOLVES_PUBLIC)
    sandbox = answering({"hooks.example.com": [PUBLIC]}, live=False)
    check_settings(WebhookSettings(url="http://hooks.example.com/in"), sandbox)
    with pytest.raises(InvalidCredentials):
        check_settings(WebhookSettings(url="hooks.example.com"), sandbox)
    with pytest.raises(InvalidCredentials) as caught:
        check_settings(
            WebhookSettings(url="https://hooks.example.com", events=["Invoice Paid"]),
            RESOLVES_PUBLIC,
        )
    assert caught.value.field == "events"


# Every way we know to write an address the webhook must not reach, and what the operator reads.
NAMES = {
    "hooks.internal.example": ["10.0.0.5"],
    "db.internal.example": ["172.16.4.2"],
    "router.example": ["192.168.1.1"],
    "mixed.example.com": [PUBLIC, "10.0.0.5"],  # one bad address is enough
    "v6only.example.com": ["fd12:3456::1"],
    "rebound.example.com": ["127.0.0.1"],
    "metadata.example.com": ["169.254.169.254"],
}
REFUSED = [
    (
        "https://hooks.internal.example/in",
        "hooks.internal.example resolves to 10.0.0.5, a private address",
    ),
    ("https://db.internal.example/in", "resolves to 172.16.4.2, a private address"),
    ("https://router.example/in", "resolves to 192.168.1.1, a private address"),
    ("https://mixed.example.com/in", "mixed.example.com resolves to 10.0.0.5, a private address"),
    ("https://v6only.example.com/in", "resolves to fd12:3456::1, a private address"),
    ("https://rebound.example.com/in", "resolves to 127.0.0.1, a loopback address"),
    ("https://metadata.example.com/in", "resolves to 169.254.169.254, a cloud metadata address"),
    (
        "https://metadata.google.internal/computeMetadata/v1/",
        "metadata.google.internal is a cloud metadata service",
    ),
    ("https://METADATA.GOOGLE.INTERNAL./x", "is a cloud metadata service"),
    ("https://127.0.0.1/in", "127.0.0.1 is a loopback address (this machine)"),
    ("https://127.0.0.1:8100/metrics", "127.0.0.1 is a loopback address"),
    ("https://[::1]/in", "::1 is a loopback address"),
    ("https://localhost/in", "localhost resolves to"),
    ("https://2130706433/in", "2130706433 resolves to 127.0.0.1, a loopback address"),
    ("https://0x7f.1/in", "0x7f.1 resolves to 127.0.0.1, a loopback address"),
    ("https://127.1/in", "127.1 resolves to 127.0.0.1, a loopback address"),
    ("https://0177.0.0.1/in", "not a URL we can send to"),
    ("https://0.0.0.0/in", "0.0.0.0 is an unspecified address"),
    ("https://[::]/in", ":: is an unspecified address"),
    ("https://10.0.0.5/in", "10.0.0.5 is a private address: webhooks must go to a public address."),
    ("https://[fd00::1]/in", "fd00::1 is a private address"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
    ("https://[fd00:ec2::254]/latest/", "fd00:ec2::254 is a cloud metadata address"),
    ("https://169.254.10.1/in", "169.254.10.1 is a link-local address"),
    ("https://[fe80::1]/in", "fe80::1 is a link-local address"),
    ("https://100.64.0.1/in", "100.64.0.1 is a shared (carrier-grade NAT) address"),
    ("https://224.0.0.1/in", "224.0.0.1 is a multicast address"),
    ("https://[ff02::1]/in", "ff02::1 is a multicast address"),
    ("https://240.0.0.1/in", "240.0.0.1 is a reserved address"),
    ("https://192.0.2.10/in", "192.0.2.10 is a reserved address"),
    ("https://[::ffff:127.0.0.1]/in", "an IPv6 form of 127.0.0.1, a loopback address"),
    ("https://[::ffff:a00:5]/in", "an IPv6 form of 10.0.0.5, a private address"),
    ("https://[::ffff:169.254.169.254]/in", "an IPv6 form of 169.254.169.254, a cloud metadata"),
    ("https://[64:ff9b::a00:5]/in", "an IPv6 form of 10.0.0.5, a private address"),
    ("https://[2002:7f00:1::]/in", "an IPv6 form of 127.0.0.1, a loopback address"),
    ("https://user:pw@10.0.0.5:8443/in", "10.0.0.5 is a private address"),
]


@pytest.mark.parametrize(("url", "says"), REFUSED, ids=[u for u, _ in REFUSED])
def test_addresses_that_are_not_public_are_refused_with_the_reason(url: str, says: str) -> None:
    with pytest.raises(InvalidCredentials) as caught:
        check_settings(WebhookSettings(url=url), answering(NAMES))
    assert caught.value.field == "url"
    assert says in str(caught.value)
    if "not a URL" not in says:
        assert str(caught.value).endswith(": webhooks must go to a public address.")


@pytest.mark.parametrize(
    "url",
    [
        f"https://{PUBLIC}/in",
        "https://[2606:4700:4700::1111]/in",
        "https://[::ffff:93.184.215.14]/in",
        "https://hooks.example.com:8443/in",
    ],
)
def test_public_addresses_are_accepted(url: str) -> None:
    check_settings(WebhookSettings(url=url), RESOLVES_PUBLIC)


def test_sandbox_mode_allows_loopback_and_nothing_else_of_the_list() -> None:
    sandbox = answering(NAMES, live=False)
    check_settings(WebhookSettings(url="http://127.0.0.1:8200/in"), sandbox)
    check_settings(WebhookSettings(url="http://localhost:8200/in"), sandbox)
    check_settings(WebhookSettings(url="http://rebound.example.com/in"), sandbox)
    for url in (
        "http://10.0.0.5/in",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/",
        "http://hooks.internal.example/in",
        "http://[::ffff:127.0.0.1]/in",  # loopback spelled another way is not the sandbox
    ):
        with pytest.raises(InvalidCredentials, match="webhooks must go to a public address"):
            check_settings(WebhookSettings(url=url), sandbox)


def test_a_name_that_does_not_resolve_is_refused_at_save_and_unavailable_at_the_test() -> None:
    with pytest.raises(InvalidCredentials, match="could not be resolved"):
        check_settings(WebhookSettings(url="https://nowhere.example/in"), RESOLVES_PUBLIC)
    result = PROVIDER.test_connection(
        creds(generate_secret()), WebhookSettings(url="https://nowhere.example/in"), RESOLVES_PUBLIC
    )
    assert not result.ok and "could not be resolved" in result.message
    # DNS failing for a moment is an outage, not a refused credential.
    assert isinstance(result.error, ProviderUnavailable)


def test_ping_reaches_the_receiver_signed(receiver: WebhookReceiver) -> None:
    secret, previous = generate_secret(), generate_secret()
    settings = WebhookSettings(url=f"{receiver.url}/hooks", events=["invoice.paid"])
    result = PROVIDER.test_connection(creds(secret, previous), settings, OFFLINE)
    assert result.ok, result.message
    assert result.message == "The endpoint answered 200 to a signed ping."
    [received] = receiver.wait_for(1)
    assert received.path == "/hooks"
    assert json.loads(received.body)["type"] == "ping"
    assert received.headers["content-type"] == "application/json"
    assert verify(received, secret) and verify(received, previous)
    assert not verify(received, generate_secret())
    # The sidecar's inbound verifier agrees.
    verify_standard(
        received.body,
        received.headers["webhook-id"],
        received.headers["webhook-timestamp"],
        received.headers["webhook-signature"],
        [secret],
    )


def test_live_mode_refuses_the_loopback_receiver_without_sending(receiver: WebhookReceiver) -> None:
    port = urlsplit(receiver.url).port
    for url in (f"https://127.0.0.1:{port}/hooks", f"https://rebound.example.com:{port}/hooks"):
        result = PROVIDER.test_connection(
            creds(generate_secret()), WebhookSettings(url=url), answering(NAMES)
        )
        assert not result.ok
        assert "a loopback address (this machine): webhooks must go to a public address" in (
            result.message
        )
        # Said as the operator's to fix: the service turns the integration Error, not "down".
        assert result.error is None
    assert receiver.received == []


def test_endpoint_error_is_reported_with_its_status(receiver: WebhookReceiver) -> None:
    receiver.statuses.append(500)
    settings = WebhookSettings(url=f"{receiver.url}/hooks")
    result = PROVIDER.test_connection(creds(generate_secret()), settings, OFFLINE)
    assert not result.ok
    assert result.message == "The endpoint answered 500"


def test_endpoint_refusing_the_signature_says_to_check_the_secret(
    receiver: WebhookReceiver,
) -> None:
    receiver.statuses.append(401)
    result = PROVIDER.test_connection(
        creds(generate_secret()), WebhookSettings(url=f"{receiver.url}/x"), OFFLINE
    )
    assert not result.ok
    assert "check it has the current signing secret" in result.message


def test_unreachable_endpoint_is_not_ok() -> None:
    context = ProviderContext(live=False, sandbox_url=None)
    settings = WebhookSettings(url="http://127.0.0.1:9/hooks")  # discard port: nothing listens
    result = PROVIDER.test_connection(creds(generate_secret()), settings, context)
    assert not result.ok
    assert result.message == "The endpoint could not be reached: ConnectError"


def test_plain_http_url_in_live_mode_fails_the_test_without_sending(
    receiver: WebhookReceiver,
) -> None:
    result = PROVIDER.test_connection(
        creds(generate_secret()), WebhookSettings(url="http://hooks.example.com/in"), LIVE
    )
    assert not result.ok
    assert "https" in result.message
    assert receiver.received == []


def test_a_redirect_is_not_followed(receiver: WebhookReceiver) -> None:
    """An allowed endpoint answering 307 to an address nobody checked: the signed request
    stops there, and the operator is told to set the URL it points to."""
    hits: list[str] = []
    redirecting = FastAPI()

    @redirecting.post("/in")
    def moved() -> Response:
        hits.append("/in")
        return Response(status_code=307, headers={"location": f"{receiver.url}/elsewhere"})

    with serve(redirecting) as url:
        adapter = PROVIDER.adapter(  # type: ignore[attr-defined]
            creds(generate_secret()), WebhookSettings(url=f"{url}/in"), OFFLINE
        )
        with pytest.raises(ProviderRejected) as caught:
            adapter.deliver("invoice.paid", {"id": "inv_1"}, msg_id="msg_redirect")
        result = PROVIDER.test_connection(
            creds(generate_secret()), WebhookSettings(url=f"{url}/in"), OFFLINE
        )
    assert hits == ["/in", "/in"]
    assert receiver.received == []
    assert "answered 307, a redirect; webhooks follow none" in str(caught.value)
    assert not result.ok and "a redirect" in result.message


class Rebinding:
    """A name whose first answer is the loopback receiver, and every later one a private
    address: what an attacker's short-TTL DNS does between our check and our connect."""

    def __init__(self, name: str) -> None:
        self.name, self.lookups = name, 0

    def __call__(self, host: str, port: int) -> list[str]:
        assert host == self.name
        self.lookups += 1
        return ["127.0.0.1"] if self.lookups == 1 else ["10.0.0.5"]


def test_the_request_goes_to_the_checked_address_and_each_delivery_checks_again(
    receiver: WebhookReceiver,
) -> None:
    """The name does not exist for the system's resolver (.test), so the ping can only arrive
    if the request connected to the address the check was given: a second lookup, ours (the
    private answer) or the system's (none), would not have reached the receiver."""
    port = urlsplit(receiver.url).port
    resolver = Rebinding("hooks.rebind.test")
    context = ProviderContext(live=False, sandbox_url=None, resolve=resolver)
    settings = WebhookSettings(url=f"http://hooks.rebind.test:{port}/hooks")
    result = PROVIDER.test_connection(creds(generate_secret()), settings, context)
    assert result.ok, result.message
    [received] = receiver.wait_for(1)
    assert resolver.lookups == 1
    # The receiver sees the name the operator typed, not the address.
    assert received.headers["host"] == f"hooks.rebind.test:{port}"
    # A later delivery looks the name up again, and refuses what it answers now.
    adapter = PROVIDER.adapter(creds(generate_secret()), settings, context)  # type: ignore[attr-defined]
    with pytest.raises(ProviderRejected) as caught:
        adapter.deliver("invoice.paid", {"id": "inv_1"}, msg_id="msg_later")
    assert str(caught.value) == (
        "hooks.rebind.test resolves to 10.0.0.5, a private address: "
        "webhooks must go to a public address."
    )
    assert len(receiver.received) == 1


def test_an_address_that_refuses_the_connection_gives_way_to_the_next_checked_one(
    receiver: WebhookReceiver,
) -> None:
    port = urlsplit(receiver.url).port
    # 127.0.0.2 is this machine too, where nothing listens on the receiver's port.
    context = answering({"two.example.test": ["127.0.0.2", "127.0.0.1"]}, live=False)
    settings = WebhookSettings(url=f"http://two.example.test:{port}/hooks")
    result = PROVIDER.test_connection(creds(generate_secret()), settings, context)
    assert result.ok, result.message
    assert len(receiver.wait_for(1)) == 1


def test_tls_checks_the_certificate_against_the_name_not_the_address(tmp_path: Path) -> None:
    """HTTPS to a pinned address still sends the URL's name (SNI) and verifies the certificate
    for it: a certificate for the name passes (it holds no address, so a check against the
    address would fail), and another name pointed at the same server is refused."""
    certificate = issue(tmp_path, "hooks.tls.test")
    context = answering(
        {"hooks.tls.test": ["127.0.0.1"], "other.tls.test": ["127.0.0.1"]}, live=False
    )
    with webhook_receiver(tls=certificate) as tls_receiver:
        port = urlsplit(tls_receiver.url).port

        def deliver(name: str) -> int:
            adapter = WebhooksAdapter(
                [generate_secret()],
                f"https://{name}:{port}/hooks",
                context=context,
                verify=certificate.client_context(),
            )
            return adapter.deliver("invoice.paid", {}, msg_id=f"msg_{name}")

        assert deliver("hooks.tls.test") == 200
        [received] = tls_receiver.wait_for(1)
        assert received.headers["host"] == f"hooks.tls.test:{port}"
        with pytest.raises(ProviderUnavailable, match="could not be reached: ConnectError"):
            deliver("other.tls.test")
        assert len(tls_receiver.received) == 1
