"""Which URLs notifications may be sent to.

Private, loopback, link-local, multicast, reserved and unspecified addresses are refused
(so a channel cannot make the server probe its own network), unless
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


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
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
