"""The webhook IP allowlist, on the client IP computed from TRUSTED_PROXIES."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEntry
from providers.config import provider_config_get
from providers.models import Job
from tests.webhooks.deliveries import OUTSIDER

pytestmark = pytest.mark.django_db

RUNNING = {"type": "training.status", "data": {"status": "running"}}


def allow(*entries: str) -> None:
    config = provider_config_get("local")
    config.webhook_allowed_ips = list(entries)
    config.save()


def rejections() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(event_type="webhook_rejected").order_by("sequence"))


def test_it_accepts_every_address_without_an_allowlist(post_webhook: Callable[..., Any], local_job: Job) -> None:
    response = post_webhook("local", {**RUNNING, "job_id": local_job.pk})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "received"


def test_an_empty_allowlist_accepts_every_address(post_webhook: Callable[..., Any], local_job: Job) -> None:
    allow()
    assert post_webhook("local", {**RUNNING, "job_id": local_job.pk}).status_code == 200


@pytest.mark.parametrize(
    ("entries", "ip"),
    [
        (["203.0.113.9"], "203.0.113.9"),  # a single IPv4 address
        (["203.0.113.9/32"], "203.0.113.9"),
        (["10.0.0.0/8", "203.0.113.0/24"], "203.0.113.77"),  # CIDR
        (["2001:db8::/32"], "2001:db8:1::5"),  # IPv6 network
        (["2001:db8::5"], "2001:db8::5"),  # a single IPv6 address
        (["203.0.113.0/24"], "::ffff:203.0.113.5"),  # a mapped client matches an IPv4 entry
        (["::ffff:203.0.113.0/120"], "203.0.113.5"),  # a mapped entry matches an IPv4 client
    ],
)
def test_it_accepts_an_address_inside_the_allowlist(
    post_webhook: Callable[..., Any], local_job: Job, entries: list[str], ip: str
) -> None:
    allow(*entries)
    response = post_webhook("local", {**RUNNING, "job_id": local_job.pk}, ip=ip)
    assert response.status_code == 200, response.content
    local_job.refresh_from_db()
    assert local_job.status == "running"


@pytest.mark.parametrize(
    ("entries", "ip"),
    [
        (["203.0.113.8"], "203.0.113.9"),
        (["10.0.0.0/8"], "11.0.0.1"),
        (["2001:db8::/32"], "2001:db9::1"),
        (["2001:db8::/32"], "203.0.113.9"),  # IPv4 never matches an IPv6 network
        (["203.0.113.0/24"], "::ffff:198.51.100.1"),
    ],
)
def test_it_rejects_an_address_outside_the_allowlist_with_403_and_an_audit_entry(
    post_webhook: Callable[..., Any], local_job: Job, entries: list[str], ip: str
) -> None:
    allow(*entries)
    response = post_webhook("local", {**RUNNING, "job_id": local_job.pk}, ip=ip)
    assert response.status_code == 403
    assert response.json() == {"detail": "IP address not in allowlist"}
    local_job.refresh_from_db()
    assert local_job.status == "queued"
    [entry] = rejections()
    expected_ip = ip.removeprefix("::ffff:")
    assert entry.actor_ip == expected_ip
    assert entry.target_id == "local"
    assert entry.details["reason"] == "ip_not_allowed"
    assert entry.details["ip"] == expected_ip and entry.details["provider"] == "local"


def test_rejections_are_listed_by_the_guides_audit_query(
    post_webhook: Callable[..., Any], local_job: Job, staff_client: APIClient
) -> None:
    allow("10.0.0.0/8")
    post_webhook("local", RUNNING, ip="198.51.100.4")
    response = staff_client.get("/api/audit?event_type=webhook_rejected&limit=100")
    assert response.status_code == 200
    entries = response.json()["entries"]
    assert [e["event_type"] for e in entries] == ["webhook_rejected"]
    assert entries[0]["details"]["ip"] == "198.51.100.4"


@pytest.mark.parametrize(
    "spoof",
    [
        {"X-Forwarded-For": "10.1.2.3"},
        {"X-Forwarded-For": "127.0.0.1"},
        {"X-Forwarded-For": "198.51.100.1, 10.1.2.3"},
        {"X-Real-IP": "10.1.2.3"},
    ],
)
def test_an_untrusted_peer_gains_nothing_by_sending_an_allowlisted_address(
    post_webhook: Callable[..., Any], local_job: Job, spoof: dict[str, str]
) -> None:
    allow("10.0.0.0/8")
    response = post_webhook("local", {**RUNNING, "job_id": local_job.pk}, ip=OUTSIDER, headers=spoof)
    assert response.status_code == 403
    assert rejections()[0].actor_ip == OUTSIDER


def test_a_trusted_tunnel_hop_passes_on_the_real_client(post_webhook: Callable[..., Any], local_job: Job) -> None:
    """cloudflared / ngrok connect from localhost (trusted by default) and name the client."""
    allow("198.51.100.0/24")
    ok = post_webhook(
        "local", {**RUNNING, "job_id": local_job.pk}, ip="127.0.0.1", headers={"X-Forwarded-For": "198.51.100.20"}
    )
    assert ok.status_code == 200, ok.content
    refused = post_webhook("local", RUNNING, ip="127.0.0.1", headers={"X-Forwarded-For": "192.0.2.1"})
    assert refused.status_code == 403
    assert rejections()[0].actor_ip == "192.0.2.1"


def test_without_trusted_proxies_the_tunnel_itself_is_the_client(
    post_webhook: Callable[..., Any], local_job: Job, settings: Any
) -> None:
    settings.TRUSTED_PROXIES = ()
    allow("198.51.100.0/24")
    response = post_webhook("local", RUNNING, ip="127.0.0.1", headers={"X-Forwarded-For": "198.51.100.20"})
    assert response.status_code == 403
    assert rejections()[0].actor_ip == "127.0.0.1"


def test_an_unknown_provider_is_404(post_webhook: Callable[..., Any]) -> None:
    response = post_webhook("nosuch", RUNNING)
    assert response.status_code == 404
    assert "nosuch" in response.json()["detail"]


def test_only_post_is_allowed(anon: APIClient) -> None:
    assert anon.get("/api/webhooks/local").status_code == 405
