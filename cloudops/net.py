"""The client IP, computed in one place for the whole server.

The socket peer is the client unless the peer is a trusted proxy (settings.TRUSTED_PROXIES).
Only then is X-Forwarded-For walked from the right, skipping trusted hops, and the first
untrusted address taken (X-Real-IP when there is no usable X-Forwarded-For). A client that is
not a trusted proxy can therefore never choose its own address by sending these headers.
Used by the webhook allowlist, audit, access logs and the rate limiter.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_CACHE_ATTR = "_cloudops_client_ip"


def parse_ip(value: str | None) -> IPAddress | None:
    """Parse an address as it appears in headers and peers; IPv4-mapped IPv6 becomes IPv4."""
    if not value:
        return None
    text = value.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:1234"
        text = text.split(":", 1)[0]
    text = text.split("%", 1)[0]  # zone index, e.g. fe80::1%eth0
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def ip_in_networks(address: IPAddress, networks: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def _forwarded_chain(header: str) -> list[IPAddress] | None:
    """All hops of an X-Forwarded-For value, or None if any hop is malformed."""
    hops = [parse_ip(part) for part in header.split(",")]
    if not hops or any(hop is None for hop in hops):
        return None
    return [hop for hop in hops if hop is not None]


def resolve_client_ip(
    peer: str | None,
    forwarded_for: str | None,
    real_ip: str | None,
    trusted: Iterable[Network],
) -> IPAddress | None:
    """The pure rule, separated from Django so it can be tested exhaustively."""
    trusted = tuple(trusted)
    peer_ip = parse_ip(peer)
    if peer_ip is None or not ip_in_networks(peer_ip, trusted):
        return peer_ip
    if forwarded_for and forwarded_for.strip():
        chain = _forwarded_chain(forwarded_for)
        if chain is None:
            return peer_ip
        for hop in reversed(chain):
            if not ip_in_networks(hop, trusted):
                return hop
        # Every hop is trusted: the leftmost one is the origin.
        return chain[0]
    real = parse_ip(real_ip)
    return real if real is not None else peer_ip


def client_ip(request: HttpRequest) -> str:
    """The client address for this request as a string ("" if the peer is unknown)."""
    cached = getattr(request, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    address = resolve_client_ip(
        request.META.get("REMOTE_ADDR"),
        request.META.get("HTTP_X_FORWARDED_FOR"),
        request.META.get("HTTP_X_REAL_IP"),
        settings.TRUSTED_PROXIES,
    )
    value = str(address) if address is not None else ""
    setattr(request, _CACHE_ATTR, value)
    return value


@functools.lru_cache(maxsize=1024)  # a pure function of its text, asked on every request
def is_loopback(ip: str) -> bool:
    address = parse_ip(ip)
    return address is not None and address.is_loopback
