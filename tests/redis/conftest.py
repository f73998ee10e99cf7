"""Fixtures of the Redis outage tests: a Redis of the test module's own, the Django cache on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache
from pytest_django.fixtures import Settings as SettingsWrapper

from cloudops.redis_backends import outage_for
from tests.redis.server import RedisServer, redis_server


@pytest.fixture(scope="module")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_cache(redis_process: RedisServer, settings: SettingsWrapper) -> Iterator[RedisServer]:
    """This process's Django cache on `redis_process`, configured as settings.py does."""
    timeouts = {"socket_connect_timeout": settings.REDIS_TIMEOUT, "socket_timeout": settings.REDIS_TIMEOUT}
    settings.CACHES = {
        "default": {"BACKEND": "cloudops.redis_backends.RedisCache", "LOCATION": redis_process.url, "OPTIONS": timeouts}
    }
    cache.clear()
    yield redis_process
    # The next test starts with Redis answering and not remembered as failed.
    outage_for(redis_process.url).failed_at = None
