"""The Django cache and the channel layer on REDIS_URL, bounded in time and degrading when
Redis is down or hung (settings.CACHES / CHANNEL_LAYERS name these classes when it is set).

Django's RedisCache and channels-redis wait on a hung Redis for as long as their sockets let
them (redis-py's default is 5 s per call), so one request that touches Redis a few times took
6 to 12 s. Here every call gives up after REDIS_TIMEOUT seconds, and then:

- cache `get` is a miss (the caller computes the value, e.g. from the database), `set` is
  skipped, `add` answers False, "not added", so whoever uses `add` as a once-per-interval
  limiter skips the action it guards (fails closed). Other cache operations raise, as
  Django's do (this project uses none of them);
- channel-layer `send`, `group_send` and `group_add` raise RedisUnavailable (a live event is
  still stored, see providers.events; a stream cannot subscribe); `group_discard` is skipped,
  the membership expires by itself after the layer's group_expiry. `receive` is left as it
  is: it blocks by design (channels-redis polls with a 5 s BZPOPMIN), so its socket may wait
  that long plus REDIS_TIMEOUT before it raises redis' TimeoutError.

After a failure, this process skips Redis for PAUSE_SECONDS (cache calls degrade, layer calls
raise, both at once) and then tries again: a hung Redis costs each process one timeout every
few seconds, not one per Redis call. That memory is per process on purpose: it is what this
process saw of its own connections, not state the processes must agree on; two processes may
notice an outage or a recovery a few seconds apart, which changes how fast they answer, never
what they answer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import redis
from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache as BaseRedisCache

from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.redis")

T = TypeVar("T")

# Long enough that a burst of requests pays the timeout once, short enough that a Redis that
# is back is used again within seconds.
PAUSE_SECONDS = 5.0


class RedisUnavailable(Exception):
    """Redis did not answer within REDIS_TIMEOUT (or failed so recently that it was not asked)."""


class Outage:
    """What this process saw of one Redis: when it last failed, so callers skip it for a while.

    Shared by threads without a lock: the races (two threads noting one failure, or one noting
    a failure while another notes a success) only move the end of the pause a little.
    """

    def __init__(self, url: str, *, pause: float = PAUSE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.pause = pause
        self.clock = clock
        self.failed_at: float | None = None

    def skipping(self) -> bool:
        return self.failed_at is not None and self.clock() - self.failed_at < self.pause

    def failed(self, exc: BaseException) -> None:
        if self.failed_at is None:
            logger.warning(
                "Redis is unavailable: the cache and live events degrade (docs/deploying.md: When Redis is down or hung)",
                extra={"error": f"{type(exc).__name__}: {exc}", "retry_seconds": self.pause},
            )
        self.failed_at = self.clock()

    def succeeded(self) -> None:
        if self.failed_at is not None:
            self.failed_at = None
            logger.info("Redis is available again")

    def why(self) -> str:
        assert self.failed_at is not None
        return f"Redis failed {self.clock() - self.failed_at:.1f}s ago; not asked again before {self.pause:.0f}s"


_outages: dict[str, Outage] = {}
_outages_lock = threading.Lock()


def outage_for(url: str) -> Outage:
    """The one Outage of `url` in this process (the cache and the layer on REDIS_URL share it)."""
    with _outages_lock:
        return _outages.setdefault(url, Outage(url))


class RedisCache(BaseRedisCache):
    """Django's RedisCache whose get, set and add degrade instead of raising (module docstring).
    The timeouts are its OPTIONS socket_connect_timeout / socket_timeout (settings)."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self.outage = outage_for(",".join(self._servers))  # type: ignore[attr-defined]  # RedisCache's, not in the stubs

    def _degrading(self, call: Callable[[], T], fallback: T) -> T:
        if self.outage.skipping():
            return fallback
        try:
            result = call()
        except redis.RedisError as exc:
            self.outage.failed(exc)
            return fallback
        self.outage.succeeded()
        return result

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._degrading(partial(super().get, key, default, version), default)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        self._degrading(partial(super().set, key, value, timeout, version), None)

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._degrading(partial(super().add, key, value, timeout, version), False)


class RedisChannelLayer(BaseRedisChannelLayer):
    """channels-redis on one Redis `url`, every call but `receive` bounded by `timeout`
    seconds (module docstring). CONFIG: {"url": ..., "timeout": ...} plus the parent's options
    except `hosts`."""

    def __init__(self, *, url: str, timeout: float, **options: Any) -> None:
        # BZPOPMIN waits up to brpop_timeout on the server when nothing arrives: only that read
        # may last longer than `timeout`, which bounds everything else (see _bounded).
        host = {"address": url, "socket_connect_timeout": timeout, "socket_timeout": self.brpop_timeout + timeout}
        super().__init__(hosts=[host], **options)
        self.timeout = timeout
        self.outage = outage_for(url)

    async def _bounded(self, call: Awaitable[T]) -> T:
        if self.outage.skipping():
            if asyncio.iscoroutine(call):
                call.close()  # never awaited: no "coroutine was never awaited" warning
            raise RedisUnavailable(self.outage.why())
        try:
            async with asyncio.timeout(self.timeout):
                result = await call
        except (redis.RedisError, TimeoutError) as exc:
            self.outage.failed(exc)
            raise RedisUnavailable(f"Redis did not answer within {self.timeout}s ({type(exc).__name__})") from exc
        self.outage.succeeded()
        return result

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self._bounded(super().send(channel, message))

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self._bounded(super().group_send(group, message))

    async def group_add(self, group: str, channel: str) -> None:
        await self._bounded(super().group_add(group, channel))

    async def group_discard(self, group: str, channel: str) -> None:
        try:
            await self._bounded(super().group_discard(group, channel))
        except RedisUnavailable as exc:
            logger.info("channel left in its group until the group expires", extra={"group": group, "error": str(exc)})
