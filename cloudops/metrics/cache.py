"""Aggregates that cost a table scan, computed off the scrape path.

A scrape must stay cheap with millions of jobs, so a source wraps its expensive aggregate in
`cached(name, compute)`: the value comes from Django's cache (Redis when REDIS_URL is set,
so one computation serves every process) while it is younger than
SIMPLETUNER_METRICS_CACHE_SECONDS. Server processes run `cloudops.metrics.worker`, which
recomputes them before they expire, so a scrape never waits for the scan; a scrape that
finds nothing fresh (cold start, no server worker) computes inline. 0 turns caching off.
While Redis is down or hung the cache answers misses within REDIS_TIMEOUT
(cloudops.redis_backends), so scrapes compute inline from the database until it is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache

T = TypeVar("T")

_refreshing: ContextVar[bool] = ContextVar("metrics_cache_refreshing", default=False)
_PREFIX = "cloudops:metrics:"


@contextmanager
def refreshing() -> Iterator[None]:
    """Inside this block `cached` recomputes values past half their life (the worker's pass)."""
    token = _refreshing.set(True)
    try:
        yield
    finally:
        _refreshing.reset(token)


def cached(name: str, compute: Callable[[], T]) -> T:
    max_age = settings.SIMPLETUNER_METRICS_CACHE_SECONDS
    if max_age <= 0:
        return compute()
    key = _PREFIX + name
    stored = cache.get(key)
    age = time.time() - stored[0] if stored is not None else float("inf")
    # A refresh recomputes what is past half its life. With a shared cache (Redis) the first
    # process to get there does it and the others find it fresh, so one scan per interval
    # serves the whole instance (two processes may race and both compute: harmless).
    if age < (max_age / 2 if _refreshing.get() else max_age):
        return stored[1]  # type: ignore[index]
    value = compute()
    # Kept a little past max_age so a slow refresh never leaves a scrape with nothing.
    cache.set(key, (time.time(), value), timeout=max_age * 2)
    return value
