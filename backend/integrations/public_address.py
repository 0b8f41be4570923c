"""Requests to a URL an operator typed go to a public address only (issue 13, item 10: SSRF).

An operator's webhook URL is a request our servers make on their say-so. Left alone it could
reach what only our servers can: the cloud's metadata service (instance credentials), the
database, the sandbox, the sidecar's /metrics on loopback, anything on the private network.
So the host is resolved, every address it resolves to is checked (one forbidden address
refuses the URL: a resolver may hand out any of them), and the request connects to exactly
one of the checked addresses: no second lookup that a short-TTL name could answer differently
(DNS rebinding). The URL keeps its host name for the Host header and for TLS (SNI and the
certificate's name), so a pinned address changes nothing the receiver sees. No redirect is
followed, and no proxy from the environment is used (a proxy would look the name up again).

Tested in tests/integrations/test_outbound_webhooks.py.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from backend.integrations import deadline

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> every address the name has now, in the order to try them.
Resolver = Callable[[str, int], list[str]]

# The metadata services of the clouds we could run on. 169.254.169.254 is also link-local, but
# is named for what it is: the most valuable address an SSRF can reach.
_METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, DigitalOcean, OpenStack
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
# Names that reach a metadata service without looking like an address.
_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # an IPv4 address inside IPv6 (RFC 6052)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RefusedURL(ValueError):
    """The URL may never be called: not a URL we send to, or an address that is not public.
    The message says which address and why, for the operator."""


class UnresolvedHost(ValueError):
    """The host name has no address right now (perhaps for a moment: DNS can fail)."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address of ``host``, in the order the system would try them (RFC 6724)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvedHost(f"{host} could not be resolved ({exc}): check the URL.") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refusal(address: IPAddress) -> str | None:
    """Why nothing of ours may be sent to ``address``, in words; None for a public address."""
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            # The IPv6 spelling reaches the IPv4 address: judged as that address.
            why = refusal(embedded)
            return f"an IPv6 form of {embedded}, {why}" if why else None
    if address.is_unspecified:
        return "an unspecified address (it means this machine)"
    if address.is_loopback:
        return "a loopback address (this machine)"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    # fec0::/10 is IPv6's old site-local block, the private addresses it began with.
    if any(address in network for network in _PRIVATE) or (
        isinstance(address, ipaddress.IPv6Address) and address.is_site_local
    ):
        return "a private address"
    if address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    # The rest of what IANA does not route on the internet: documentation and benchmarking
    # ranges, 0/8, 240/4, the broadcast address, IPv6's reserved blocks, Teredo ...
    if address.is_reserved or address.is_private or not address.is_global:
        return "a reserved address that is not on the internet"
    return None


@dataclass(frozen=True)
class Target:
    """A URL whose every address was checked: where a request may go, and only there."""

    url: httpx.URL
    # In the resolver's order; a request tries them in turn (only where it could not connect).
    addresses: tuple[str, ...]


def check(url: str, *, allow_loopback: bool, resolve: Resolver) -> Target:
    """The checked target of ``url``; RefusedURL (why, in words) or UnresolvedHost.

    ``allow_loopback`` is for sandbox mode, where the sandbox and a developer's receiver listen
    on this machine; every other forbidden address stays forbidden there too.
    """
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise RefusedURL(f"This is not a URL we can send to: {exc}.") from None
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.host:
        raise RefusedURL("The endpoint must be a full URL such as https://example.com/hooks.")
    # IDNA-encoded, as httpx sends it in the Host header and SNI; no brackets around IPv6.
    host = parsed.raw_host.decode("ascii")
    if host.lower().rstrip(".") in _METADATA_NAMES:
        raise RefusedURL(
            f"{host} is a cloud metadata service: webhooks must go to a public address."
        )
    port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
    addresses = resolve(host, port)
    if not addresses:
        raise UnresolvedHost(f"{host} has no address: check the URL.")
    for text in addresses:
        try:
            # A scope ("fe80::1%eth0") names an interface of this machine: link-local anyway.
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            raise RefusedURL(f"{host} resolves to {text!r}, which is not an address.") from None
        why = refusal(address)
        if why is None or (allow_loopback and address.is_loopback):
            continue
        said = f"{host} is" if _is_literal(host, address) else f"{host} resolves to {address},"
        raise RefusedURL(f"{said} {why}: webhooks must go to a public address.")
    return Target(parsed, tuple(addresses))


def _is_literal(host: str, address: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(host) == address
    except ValueError:
        return False


def post(
    target: Target,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout: httpx.Timeout,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Response:
    """POST to ``target``, connecting to its checked addresses only.

    The request line's host is the address; the Host header and TLS keep the URL's name
    (``sni_hostname``: the server name sent and the name the certificate must carry), so
    virtual hosting and certificate checks work as if the name had been looked up here.
    Raises httpx's errors; tries the next checked address only where it could not connect
    (nothing was sent yet, so nothing is sent twice).
    """
    name = target.url.raw_host.decode("ascii")
    extensions = {"sni_hostname": name} if target.url.scheme == "https" else {}
    # What httpx would have sent: the name, and the port only when the URL has one.
    sent_headers = {**headers, "host": target.url.netloc.decode("ascii")}
    failure: httpx.TransportError | None = None
    # trust_env=False: an HTTP(S)_PROXY from the environment would resolve the name itself.
    # deadline.http_client: the sockets are watched, so an endpoint that drips its answer
    # is cut off at the caller's ``within`` deadline, not only at each read's timeout.
    with deadline.http_client(timeout, verify=verify, trust_env=False) as client:
        for address in target.addresses:
            request = client.build_request(
                "POST",
                target.url.copy_with(host=address),
                content=content,
                headers=sent_headers,
                extensions=extensions,
            )
            try:
                return client.send(request, follow_redirects=False)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure = exc
    if failure is None:  # check() never makes a target without an address
        raise httpx.ConnectError(f"{name} has no address to connect to")
    raise failure
