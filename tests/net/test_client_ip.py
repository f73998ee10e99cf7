from __future__ import annotations

import ipaddress

import pytest
from django.test import RequestFactory, override_settings

from cloudops.net import client_ip, parse_ip, resolve_client_ip

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))
PROXIES = (ipaddress.ip_network("10.0.0.0/8"), *LOOPBACK)


def resolve(peer: str, xff: str | None = None, real: str | None = None, trusted: tuple = PROXIES) -> str:
    return str(resolve_client_ip(peer, xff, real, trusted))


def test_a_direct_client_is_the_socket_peer() -> None:
    assert resolve("203.0.113.7") == "203.0.113.7"


@pytest.mark.parametrize("header", ["127.0.0.1", "10.1.2.3", "192.168.0.1, 127.0.0.1"])
def test_an_untrusted_peer_cannot_spoof_its_address_with_x_forwarded_for(header: str) -> None:
    assert resolve("203.0.113.7", xff=header) == "203.0.113.7"


def test_an_untrusted_peer_cannot_spoof_its_address_with_x_real_ip() -> None:
    assert resolve("203.0.113.7", real="127.0.0.1") == "203.0.113.7"


def test_a_trusted_tunnel_hop_passes_on_the_client() -> None:
    assert resolve("127.0.0.1", xff="198.51.100.20") == "198.51.100.20"


def test_it_walks_from_the_right_past_trusted_hops() -> None:
    # The client claims 1.1.1.1 but the first untrusted hop the proxies saw is 198.51.100.20.
    assert resolve("10.0.0.5", xff="1.1.1.1, 198.51.100.20, 10.0.0.9, 127.0.0.1") == "198.51.100.20"


def test_when_every_hop_is_trusted_the_leftmost_is_the_origin() -> None:
    assert resolve("127.0.0.1", xff="10.0.0.1, 10.0.0.2") == "10.0.0.1"


def test_x_real_ip_is_used_when_there_is_no_x_forwarded_for() -> None:
    assert resolve("127.0.0.1", real="198.51.100.9") == "198.51.100.9"


@pytest.mark.parametrize("header", ["not-an-ip", "198.51.100.20, garbage", ",", "198.51.100.20,,"])
def test_a_malformed_x_forwarded_for_falls_back_to_the_peer(header: str) -> None:
    assert resolve("127.0.0.1", xff=header) == "127.0.0.1"


def test_a_malformed_x_real_ip_falls_back_to_the_peer() -> None:
    assert resolve("127.0.0.1", real="nonsense") == "127.0.0.1"


def test_ipv4_mapped_ipv6_is_normalised_everywhere() -> None:
    assert resolve("::ffff:203.0.113.7") == "203.0.113.7"
    assert resolve("::ffff:127.0.0.1", xff="::ffff:198.51.100.1") == "198.51.100.1"


def test_ipv6_clients_and_ports_in_headers() -> None:
    assert resolve("::1", xff="[2001:db8::5]:4711") == "2001:db8::5"
    assert resolve("127.0.0.1", xff="198.51.100.3:8443") == "198.51.100.3"
    assert resolve("2001:db8::9") == "2001:db8::9"


def test_an_empty_trusted_set_trusts_nobody() -> None:
    assert resolve("127.0.0.1", xff="198.51.100.20", trusted=()) == "127.0.0.1"


def test_parse_ip_rejects_junk() -> None:
    assert parse_ip("") is None
    assert parse_ip("999.1.1.1") is None
    assert parse_ip("fe80::1%eth0") == ipaddress.ip_address("fe80::1")


def test_client_ip_reads_the_request_with_the_configured_proxies() -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert client_ip(request) == "198.51.100.4"


@override_settings(TRUSTED_PROXIES=())
def test_client_ip_ignores_headers_when_no_proxy_is_trusted() -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert client_ip(request) == "127.0.0.1"
