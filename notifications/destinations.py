"""Which URLs notifications may be sent to.

Private, loopback, link-local, multicast, reserved and unspecified addresses are refused
(so a channel cannot make the server probe its own network), also when an IPv6 address only
wraps one (IPv4-mapped, IPv4-compatible, 6to4, NAT64), unless
SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE=true. Checked when a channel is saved (400) and again
before every send against what DNS answers then, every answer: a name that resolved to a
public address at creation may point inward later.

Accepted race, written down here: the HTTP client resolves the name again when it connects,
so a DNS server that answers differently within that instant (rebinding) can still steer one
request. Through a proxy, the proxy resolves and connects, and our check is of the name's
answers here.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

MAX_URL_LENGTH = 2048


class DestinationRefused(ValueError):
    """The URL is malformed or points somewhere notifications may not go."""


# IPv6 ranges that carry an IPv4 address in their last 32 bits and reach it: NAT64's
# well-known prefix (RFC 6052) and the deprecated IPv4-compatible form (::a.b.c.d). Python's
# is_global calls both global, whatever the IPv4 address inside.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# NAT64's local-use prefix (RFC 8215) translates into a network of the operator's choosing.
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64, IPv4-compatible)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return False
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            address = embedded
    return address.is_global and not address.is_multicast


def parse_url(url: str) -> tuple[str, int]:
    """(host, port) of an absolute http(s) URL without credentials; DestinationRefused otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise DestinationRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationRefused(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused("must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise DestinationRefused("must not carry credentials (user:password@)")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationRefused(f"{host} does not resolve ({exc})") from None
    return [ipaddress.ip_address(str(answer[4][0]).split("%")[0]) for answer in answers]


def check_destination(url: str) -> None:
    """Raise DestinationRefused unless `url` may receive notifications now (see the module)."""
    host, port = parse_url(url)
    if settings.SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE:
        return
    for address in _addresses(host, port):
        if not _public(address):
            raise DestinationRefused(
                f"{host} resolves to {address}, a private, loopback or link-local address; "
                "set SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE=true to allow internal destinations"
            )
