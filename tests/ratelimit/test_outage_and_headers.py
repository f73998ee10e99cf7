"""Backend outages follow each rule's fail mode; headers are exact with an injected clock."""

from __future__ import annotations

import json
import math

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory

from cloudops.ratelimit.limiter import RateLimiter, webhook_rate_limiter
from cloudops.ratelimit.middleware import RateLimitMiddleware
from tests.processes import django_env, spawn_django, wait_all
from tests.ratelimit.conftest import FakeClock
from tests.server.live import free_port

pytestmark = pytest.mark.django_db

CLIENT = "203.0.113.7"


@pytest.fixture
def redis_down(settings) -> str:  # type: ignore[no-untyped-def]
    """Redis as the state backend, on a port where nothing listens."""
    settings.STATE_BACKEND = "redis"
    settings.RATE_LIMIT_REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    return settings.RATE_LIMIT_REDIS_URL


def send(method: str, path: str):  # type: ignore[no-untyped-def]
    return getattr(Client(), method.lower())(path, REMOTE_ADDR=CLIENT)


def test_general_traffic_fails_open_and_auth_fails_closed(redis_down: str) -> None:
    admitted = send("GET", "/api/cloud/jobs")
    assert admitted.status_code == 401
    assert "X-RateLimit-Limit" not in admitted
    refused = send("POST", "/api/auth/login")
    assert refused.status_code == 503
    assert refused.json() == {"detail": "Rate limiting is temporarily unavailable. Please try again later."}
    assert refused["Retry-After"] == "5"


def test_every_password_entry_point_fails_closed_with_the_login_rule(redis_down: str) -> None:
    assert send("GET", "/admin/login/").status_code == 200  # the default rule fails open
    for path in ("/admin/login/", "/admin/password_change/", "/api/auth/register"):
        assert send("POST", path).status_code == 503


def test_fail_open_false_refuses_general_traffic_too(redis_down: str, settings) -> None:  # type: ignore[no-untyped-def]
    settings.RATE_LIMIT_FAIL_OPEN = False
    assert send("GET", "/api/cloud/jobs").status_code == 503


def test_a_custom_rule_can_fail_open_on_auth_paths(redis_down: str, settings) -> None:  # type: ignore[no-untyped-def]
    settings.RATE_LIMIT_RULES = [["^/api/auth/login$", 5, 60, ["POST"], True]]
    assert send("POST", "/api/auth/login").status_code == 415  # reached the view


def test_the_health_component_reports_the_outage(redis_down: str, staff_client: Client) -> None:
    body = staff_client.get("/api/cloud/health").json()
    component = next(c for c in body["components"] if c["name"] == "rate_limit_backend")
    assert component["status"] == "degraded"
    assert "unavailable" in component["message"]
    assert "ConnectionError" in component["error"]


def test_the_health_component_is_healthy_on_the_database(anon: Client) -> None:
    body = anon.get("/api/cloud/health").json()
    component = next(c for c in body["components"] if c["name"] == "rate_limit_backend")
    assert component["status"] == "healthy"
    assert "state backend reachable (the main database)" in component["message"]


def test_the_limiter_api_follows_its_fail_mode(redis_down: str) -> None:
    assert RateLimiter(1, 60, "x", fail_open=True).check_sync("k") is True
    assert RateLimiter(1, 60, "x", fail_open=False).check_sync("k") is False


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_unreachable_state_database_follows_the_fail_modes() -> None:
    """STATE_BACKEND_URL naming a PostgreSQL port nobody listens on, in a real process."""
    code = """
    import json
    from django.test import Client
    c = Client()
    print(json.dumps([c.get("/api/cloud/jobs", REMOTE_ADDR="203.0.113.7", HTTP_HOST="localhost").status_code,
                      c.post("/api/auth/login", REMOTE_ADDR="203.0.113.7", HTTP_HOST="localhost").status_code]))
    """
    env = django_env(STATE_BACKEND="database", STATE_BACKEND_URL=f"postgres://nobody@127.0.0.1:{free_port()}/state")
    (out,) = wait_all([spawn_django(code, env=env)])
    assert json.loads(out) == [401, 503]


def view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def test_reset_and_retry_after_are_exact_to_the_second(clock: FakeClock) -> None:
    middleware = RateLimitMiddleware(view, calls=2, period=60, rules=[], clock=clock)
    factory = RequestFactory()
    first = clock.now
    response = middleware(factory.get("/anything", REMOTE_ADDR=CLIENT))
    assert response["X-RateLimit-Reset"] == str(math.ceil(first + 60))
    clock.advance(12.3)
    assert middleware(factory.get("/anything", REMOTE_ADDR=CLIENT))["X-RateLimit-Remaining"] == "0"
    clock.advance(30.2)  # 42.5 s after the first request
    refused = middleware(factory.get("/anything", REMOTE_ADDR=CLIENT))
    assert refused.status_code == 429
    assert refused["Retry-After"] == "18"  # 17.5 s until the first request leaves the window
    assert refused["X-RateLimit-Reset"] == str(math.ceil(first + 60))
    clock.now = first + 60
    assert middleware(factory.get("/anything", REMOTE_ADDR=CLIENT)).status_code == 200


def test_custom_rules_and_defaults_through_the_constructor(clock: FakeClock) -> None:
    rules = [(r"^/api/cloud/expensive$", 1, 300, ["POST"]), (r"^/api/cloud/public$", 1000, 60, None)]
    middleware = RateLimitMiddleware(view, calls=7, period=60, rules=rules, enable_audit=False, clock=clock)
    factory = RequestFactory()
    assert middleware(factory.post("/api/cloud/expensive", REMOTE_ADDR=CLIENT)).status_code == 200
    refused = middleware(factory.post("/api/cloud/expensive", REMOTE_ADDR=CLIENT))
    assert refused.status_code == 429 and refused["Retry-After"] == "300"
    assert middleware(factory.get("/api/cloud/public", REMOTE_ADDR=CLIENT))["X-RateLimit-Limit"] == "1000"
    assert middleware(factory.get("/elsewhere", REMOTE_ADDR=CLIENT))["X-RateLimit-Limit"] == "7"
    configured = RateLimitMiddleware.configure(calls=4, rules=[], clock=clock)
    assert configured(view)(factory.get("/elsewhere", REMOTE_ADDR="203.0.113.8"))["X-RateLimit-Limit"] == "4"


def test_an_endpoint_asking_the_preset_does_not_count_the_request_twice() -> None:
    def webhook_view(request: HttpRequest) -> HttpResponse:
        allowed = webhook_rate_limiter.check_request_sync(request, CLIENT)
        return HttpResponse(status=200 if allowed else 429)

    middleware = RateLimitMiddleware(webhook_view)
    assert middleware(RequestFactory().post("/api/webhooks/replicate", REMOTE_ADDR=CLIENT)).status_code == 200
    assert webhook_rate_limiter.get_usage_sync(CLIENT)["count"] == 1


@pytest.mark.django_db(transaction=True)
async def test_the_async_stack_counts_once_and_check_request_reuses_the_verdict() -> None:
    from asgiref.sync import sync_to_async
    from django.db import connections

    async def webhook_view(request: HttpRequest) -> HttpResponse:
        allowed = await webhook_rate_limiter.check_request(request, CLIENT)
        return HttpResponse(status=200 if allowed else 429)

    middleware = RateLimitMiddleware(webhook_view)
    response = await middleware(RequestFactory().post("/api/webhooks/replicate", REMOTE_ADDR=CLIENT))
    assert response.status_code == 200
    assert response["X-RateLimit-Limit"] == "100" and response["X-RateLimit-Remaining"] == "99"
    assert (await webhook_rate_limiter.get_usage(CLIENT))["count"] == 1
    await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
async def test_the_async_stack_asks_redis_on_the_event_loop_and_still_audits(redis_url: str, settings) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    from audit.models import AuditEntry
    from cloudops.ratelimit.backends import state_backend

    settings.STATE_BACKEND = "redis"
    settings.RATE_LIMIT_REDIS_URL = redis_url

    async def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    middleware = RateLimitMiddleware(view, calls=2, period=60, rules=[])
    responses = [await middleware(RequestFactory().get("/api/cloud/jobs", REMOTE_ADDR=CLIENT)) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[1]["X-RateLimit-Remaining"] == "0" and 59 <= int(responses[2]["Retry-After"]) <= 60
    # The native async client of this loop answered (no hop into a worker thread) ...
    assert asyncio.get_running_loop() in state_backend()._async_clients
    # ... and the refusal was still audited through the ORM.
    audited = await sync_to_async(AuditEntry.objects.filter(event_type="rate_limited").count)()
    assert audited == 1
    await sync_to_async(connections.close_all)()


async def test_the_async_stack_fails_open_and_closed_on_a_redis_outage(redis_down: str) -> None:
    async def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    middleware = RateLimitMiddleware(view)
    admitted = await middleware(RequestFactory().get("/api/cloud/jobs", REMOTE_ADDR=CLIENT))
    assert admitted.status_code == 200 and "X-RateLimit-Limit" not in admitted
    refused = await middleware(RequestFactory().post("/api/auth/login", REMOTE_ADDR=CLIENT))
    assert refused.status_code == 503 and refused["Retry-After"] == "5"
