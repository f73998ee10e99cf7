"""Fixtures: each state backend on its real server, and a clock the test moves by hand."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from cloudops.ratelimit.backends.base import StateBackend
from cloudops.ratelimit.backends.database import DatabaseBackend
from cloudops.ratelimit.backends.memory import MemoryBackend
from cloudops.ratelimit.backends.redis import PREFIX, RedisBackend
from tests.services import require_service


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def flush_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=PREFIX + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = require_service("redis")
    flush_redis(url)
    yield url
    flush_redis(url)


@pytest.fixture(params=["database", "redis", "memory"])
def backend(request: pytest.FixtureRequest) -> StateBackend:
    """The database backend runs on the suite's database (SQLite file, PostgreSQL or MariaDB)."""
    if request.param == "database":
        return DatabaseBackend("default", prune_every=10**9)
    if request.param == "redis":
        return RedisBackend(request.getfixturevalue("redis_url"))
    return MemoryBackend()
