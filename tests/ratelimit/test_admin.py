"""Admin: the live state per key, and an audited reset."""

from __future__ import annotations

from io import StringIO

import pytest
from django.test import Client

from audit.models import AuditEntry
from cloudops.ratelimit.limiter import RateLimiter

pytestmark = pytest.mark.django_db

URL = "/admin/ratelimit/ratelimitbucket/"


def test_staff_see_each_key_and_its_count(admin_client: Client) -> None:
    limiter = RateLimiter(10, 60, "auth-login")
    for _ in range(3):
        limiter.check_sync("203.0.113.50")
    page = admin_client.get(URL).content.decode()
    assert "auth-login:203.0.113.50" in page
    assert "<td>3</td>" in page
    assert "Backend: <strong>database</strong>" in page


def test_reset_forgets_the_key_and_is_audited(admin_client: Client, olivia) -> None:  # type: ignore[no-untyped-def]
    limiter = RateLimiter(1, 60, "auth-login")
    limiter.check_sync("203.0.113.51")
    assert not limiter.check_sync("203.0.113.51")
    response = admin_client.post(URL, {"key": "auth-login:203.0.113.51"}, follow=True)
    assert "Reset auth-login:203.0.113.51." in response.content.decode()
    assert limiter.check_sync("203.0.113.51")
    entry = AuditEntry.objects.get(event_type="rate_limit.reset")
    assert entry.target_id == "auth-login:203.0.113.51"
    assert entry.actor_username == olivia.username
    assert entry.details == {"key": "auth-login:203.0.113.51", "existed": True}


def test_a_reset_without_a_key_is_refused_with_a_message(admin_client: Client) -> None:
    response = admin_client.post(URL, {"key": " "}, follow=True)
    assert "No key given" in response.content.decode()
    assert not AuditEntry.objects.filter(event_type="rate_limit.reset").exists()


def test_non_staff_cannot_see_or_reset(alice) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(alice)
    assert client.get(URL).status_code == 302  # to the admin login
    assert client.post(URL, {"key": "anything"}).status_code == 302


def test_the_prune_command_removes_expired_state() -> None:
    import time

    from django.core.management import call_command

    from cloudops.ratelimit.models import RateLimitBucket

    RateLimitBucket.objects.create(key="old:1", hits="[1.0]", window=60, expires_at=61.0)
    RateLimitBucket.objects.create(key="live:1", hits="[]", window=60, expires_at=time.time() + 60)
    out = StringIO()
    call_command("ratelimit_prune", stdout=out)
    assert out.getvalue().strip() == "Removed 1 expired rate-limit keys."
    assert list(RateLimitBucket.objects.values_list("key", flat=True)) == ["live:1"]


def test_the_prune_command_fails_clearly_when_the_backend_is_down(settings) -> None:  # type: ignore[no-untyped-def]
    from django.core.management import CommandError, call_command

    settings.STATE_BACKEND = "redis"
    settings.RATE_LIMIT_REDIS_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(CommandError, match="Redis state backend"):
        call_command("ratelimit_prune")


def test_a_key_cannot_be_edited_by_hand(admin_client: Client) -> None:
    RateLimiter(10, 60, "auth-login").check_sync("203.0.113.52")
    url = f"{URL}auth-login:203.0.113.52/change/"
    assert admin_client.get(url).status_code == 200  # shown read-only
    admin_client.post(url, {"hits": "[]", "window": "1", "expires_at": "0"})
    assert RateLimiter(10, 60, "auth-login").get_usage_sync("203.0.113.52")["count"] == 1
