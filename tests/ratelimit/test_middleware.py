"""The middleware through Django's real request stack, on the configured (database) backend."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from audit.models import AuditEntry
from cloudops.ratelimit.limiter import s3_rate_limiter, webhook_rate_limiter

pytestmark = pytest.mark.django_db

CLIENT = "203.0.113.5"
EXCEEDED = {"detail": "Rate limit exceeded. Please try again later."}


def send(method: str, path: str, ip: str = CLIENT, **extra: str):  # type: ignore[no-untyped-def]
    return getattr(Client(), method.lower())(path, REMOTE_ADDR=ip, content_type="application/json", **extra)


def exhaust(method: str, path: str, calls: int, ip: str = CLIENT, **extra: str):  # type: ignore[no-untyped-def]
    """Send `calls` requests (all must pass the limiter), then one more: the refused one."""
    for n in range(calls):
        response = send(method, path, ip, **extra)
        assert response.status_code != 429, f"request {n + 1} of {calls} refused"
        assert response["X-RateLimit-Limit"] == str(calls)
        assert response["X-RateLimit-Remaining"] == str(calls - n - 1)
    return send(method, path, ip, **extra)


DEFAULT_RULES = [
    ("POST", "/api/auth/login", 5),
    ("POST", "/api/auth/register", 3),
    ("POST", "/api/auth/api-keys", 10),
    ("POST", "/api/cloud/jobs", 20),
    ("POST", "/api/cloud/jobs/submit", 20),
    ("POST", "/api/cloud/jobs/abc123/cancel", 30),
    ("POST", "/api/webhooks/replicate", 100),
    ("GET", "/api/cloud/storage/some-bucket/key.bin", 50),
    ("GET", "/api/quotas/", 30),
    ("POST", "/api/cloud/notifications/channels", 30),
    ("PATCH", "/api/cloud/notifications/channels/7", 30),
    ("DELETE", "/api/cloud/notifications/subscriptions/7", 30),
    ("PUT", "/api/cloud/notifications", 30),
    ("GET", "/api/cloud/jobs", 100),
]


@pytest.mark.parametrize(("method", "path", "calls"), DEFAULT_RULES)
def test_every_default_rule_refuses_the_request_over_its_limit(method: str, path: str, calls: int) -> None:
    refused = exhaust(method, path, calls)
    assert refused.status_code == 429
    assert refused.json() == EXCEEDED
    assert refused["X-RateLimit-Limit"] == str(calls)
    assert refused["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(refused["Retry-After"]) <= 60


def test_method_filters_send_other_methods_to_the_default_rule() -> None:
    assert send("GET", "/api/auth/login")["X-RateLimit-Limit"] == "100"
    assert send("GET", "/api/cloud/jobs/abc/cancel")["X-RateLimit-Limit"] == "100"
    assert send("POST", "/api/auth/login")["X-RateLimit-Limit"] == "5"


def test_notification_writes_share_one_budget_and_reads_stay_on_the_default_rule() -> None:
    writes = ["POST", "PUT", "PATCH", "DELETE"] * 8
    for n, method in enumerate(writes[:30]):
        response = send(method, f"/api/cloud/notifications/channels/{n}")
        assert response.status_code != 429, f"write {n + 1} of 30 refused"
        assert response["X-RateLimit-Limit"] == "30"
    refused = send("POST", "/api/cloud/notifications/subscriptions")
    assert refused.status_code == 429
    assert refused.json() == EXCEEDED
    assert (refused["X-RateLimit-Limit"], refused["X-RateLimit-Remaining"]) == ("30", "0")
    assert 1 <= int(refused["Retry-After"]) <= 60
    for path in ("/api/cloud/notifications/channels", "/api/cloud/notifications/deliveries"):
        read = send("GET", path)
        assert read.status_code != 429
        assert read["X-RateLimit-Limit"] == "100"  # the default rule, not the notifications one


def test_each_rule_has_its_own_budget_per_client() -> None:
    assert exhaust("POST", "/api/auth/login", 5).status_code == 429
    assert send("GET", "/api/cloud/jobs").status_code == 401  # the default budget is untouched
    assert send("POST", "/api/auth/login", ip="203.0.113.6").status_code != 429


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/cloud/health"),
        ("GET", "/api/cloud/health/live"),
        ("GET", "/api/users/me"),
        ("GET", "/api/cloud/providers"),
        ("GET", "/static/admin/css/base.css"),
        ("GET", "/api/cloud/hints"),
        ("GET", "/api/events/stream"),
    ],
)
def test_excluded_paths_are_never_limited(method: str, path: str) -> None:
    for _ in range(3):
        response = send(method, path)
        assert "X-RateLimit-Limit" not in response
        assert response.status_code != 429


@override_settings(RATE_LIMIT_CALLS=2)
@pytest.mark.parametrize("method", ["PUT", "PATCH", "POST"])
def test_provider_configuration_changes_are_limited(method: str) -> None:
    refused = exhaust(method, "/api/cloud/providers/replicate", 2)
    assert refused.status_code == 429
    assert exhaust(method, "/api/cloud/providers/replicate/config", 2, ip="203.0.113.9").status_code == 429


def test_real_localhost_is_not_limited() -> None:
    for ip in ("127.0.0.1", "::1"):
        for _ in range(7):
            response = send("POST", "/api/auth/login", ip=ip)
            assert response.status_code != 429
            assert "X-RateLimit-Limit" not in response


def test_a_client_behind_a_trusted_local_proxy_is_limited_by_its_own_address() -> None:
    refused = exhaust("POST", "/api/auth/login", 5, ip="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.20")
    assert refused.status_code == 429
    assert send("POST", "/api/auth/login", ip="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.21").status_code != 429


def test_forwarding_headers_from_an_untrusted_peer_gain_nothing() -> None:
    assert exhaust("POST", "/api/auth/login", 5).status_code == 429
    for spoof in ("127.0.0.1", "198.51.100.99", "::1"):
        response = send("POST", "/api/auth/login", HTTP_X_FORWARDED_FOR=spoof, HTTP_X_REAL_IP=spoof)
        assert response.status_code == 429


@override_settings(RATE_LIMIT_CALLS=0)
def test_zero_calls_disables_rate_limiting() -> None:
    for _ in range(8):
        response = send("POST", "/api/auth/login")
        assert response.status_code != 429
        assert "X-RateLimit-Limit" not in response


@override_settings(RATE_LIMIT_CALLS=3, RATE_LIMIT_PERIOD=120)
def test_the_default_rule_follows_the_settings() -> None:
    refused = exhaust("GET", "/api/cloud/jobs", 3)
    assert refused.status_code == 429
    assert 119 <= int(refused["Retry-After"]) <= 120


@override_settings(RATE_LIMIT_RULES=[[r"^/api/cloud/jobs$", 2, 300, ["GET"]], [r"^/api/auth/login$", 1, 60, None]])
def test_custom_rules_from_settings_come_before_the_defaults() -> None:
    assert exhaust("GET", "/api/cloud/jobs", 2).status_code == 429
    assert exhaust("POST", "/api/auth/login", 1).status_code == 429
    # Other routes keep the default rules.
    assert send("POST", "/api/cloud/jobs/x/cancel")["X-RateLimit-Limit"] == "30"


def test_a_flood_writes_one_audit_entry_per_ip_and_window(staff_client: Client) -> None:
    before = AuditEntry.objects.filter(event_type="rate_limited").count()
    exhaust("POST", "/api/auth/login", 5, HTTP_USER_AGENT="hydra/9.5")
    for _ in range(20):
        assert send("POST", "/api/auth/login", HTTP_USER_AGENT="hydra/9.5").status_code == 429
    exhaust("POST", "/api/auth/login", 5, ip="198.51.100.30")
    assert AuditEntry.objects.filter(event_type="rate_limited").count() == before + 2
    body = staff_client.get("/api/audit?event_type=rate_limited&limit=100").json()
    entry = next(e for e in body["entries"] if e["actor"]["ip"] == CLIENT)
    assert entry["details"]["path"] == "/api/auth/login"
    assert entry["details"]["method"] == "POST"
    assert entry["details"]["user_agent"] == "hydra/9.5"


@override_settings(RATE_LIMIT_AUDIT=False)
def test_auditing_can_be_turned_off() -> None:
    before = AuditEntry.objects.filter(event_type="rate_limited").count()
    assert exhaust("POST", "/api/auth/login", 5).status_code == 429
    assert AuditEntry.objects.filter(event_type="rate_limited").count() == before


def test_the_webhook_and_storage_rules_count_through_the_presets() -> None:
    send("POST", "/api/webhooks/replicate")
    send("GET", "/api/cloud/storage/b/k")
    assert webhook_rate_limiter.get_usage_sync(CLIENT)["count"] == 1
    assert s3_rate_limiter.get_usage_sync(f"ip:{CLIENT}")["count"] == 1


def test_every_refusal_counts_once_as_a_violation() -> None:
    from cloudops.ratelimit.backends import state_backend

    before = state_backend().violations_total()
    exhaust("POST", "/api/auth/login", 5)  # the sixth request is refused
    for _ in range(9):
        send("POST", "/api/auth/login")
    # Ten refusals; the audit gate's own bookkeeping is not a client's violation.
    assert state_backend().violations_total() == before + 10
