"""Old state goes away by itself, and the instance-wide counters render for Prometheus."""

from __future__ import annotations

import time

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from cloudops.ratelimit import metrics
from cloudops.ratelimit.backends.database import DatabaseBackend
from cloudops.ratelimit.backends.memory import MemoryBackend
from cloudops.ratelimit.backends.redis import CLIENTS, PREFIX, RedisBackend
from cloudops.ratelimit.limiter import RateLimiter
from cloudops.ratelimit.models import RateLimitBucket
from tests.ratelimit.conftest import FakeClock

pytestmark = pytest.mark.django_db


def test_database_state_is_pruned_as_it_expires(clock: FakeClock) -> None:
    backend = DatabaseBackend(prune_every=1)  # prune on every write, to see it happen
    rl = RateLimiter(5, 60, "expiry", clock=clock, backend=backend)
    for n in range(200):
        rl.check_sync(f"client-{n}")
    assert RateLimitBucket.objects.filter(key__startswith="expiry:").count() == 200
    clock.advance(61)
    rl.check_sync("late-client")
    assert list(RateLimitBucket.objects.filter(key__startswith="expiry:").values_list("key", flat=True)) == [
        "expiry:late-client"
    ]


def test_memory_state_is_pruned_as_it_expires(clock: FakeClock) -> None:
    backend = MemoryBackend()
    rl = RateLimiter(5, 60, "expiry", clock=clock, backend=backend)
    for n in range(50):
        rl.check_sync(f"client-{n}")
    assert backend.prune(now=clock.now + 61) == 50


def test_redis_keys_carry_the_window_as_ttl_and_vanish(redis_url: str) -> None:
    backend = RedisBackend(redis_url)
    rl = RateLimiter(5, 1.5, "expiry", backend=backend)
    for n in range(20):
        assert rl.check_sync(f"client-{n}")
    client = redis.Redis.from_url(redis_url)
    ttl = client.pttl(PREFIX + "expiry:client-0")
    assert 0 < ttl <= 1500
    time.sleep(1.8)
    assert client.exists(*[PREFIX + f"expiry:client-{n}" for n in range(20)]) == 0
    rl.check_sync("late-client")
    assert backend.tracked_clients(now=time.time()) == 1  # reading the index trims it
    assert client.zcard(CLIENTS) == 1


class RateLimitCollector(Collector):
    def collect(self):  # type: ignore[no-untyped-def]
        yield from metrics.collect()


def scrape() -> str:
    registry = CollectorRegistry()
    registry.register(RateLimitCollector())
    return generate_latest(registry).decode()


def test_the_metrics_render_for_prometheus(clock: FakeClock) -> None:
    rl = RateLimiter(1, 60, "metrics", backend=None)
    for client in ("a", "b", "c"):
        rl.check_sync(client)
    for _ in range(4):
        rl.check_sync("a")
    text = scrape()
    assert "# TYPE simpletuner_rate_limit_violations_total counter" in text
    assert "simpletuner_rate_limit_violations_total 4.0" in text
    assert "# TYPE simpletuner_rate_limit_tracked_clients gauge" in text
    assert "simpletuner_rate_limit_tracked_clients 3.0" in text


def test_metrics_are_left_out_while_the_backend_is_down(settings) -> None:  # type: ignore[no-untyped-def]
    settings.STATE_BACKEND = "redis"
    settings.RATE_LIMIT_REDIS_URL = "redis://127.0.0.1:1/0"
    assert "simpletuner_rate_limit" not in scrape()


def test_redis_reloads_its_script_after_the_server_lost_it(redis_url: str, clock: FakeClock) -> None:
    backend = RedisBackend(redis_url)
    rl = RateLimiter(2, 60, "reload", clock=clock, backend=backend)
    assert rl.check_sync("k")
    redis.Redis.from_url(redis_url).script_flush()  # as after a Redis restart
    assert rl.check_sync("k")
    assert not rl.check_sync("k")
