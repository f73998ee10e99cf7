"""The distributed sliding-window limiter: async first, with a sync twin of each call.

    limiter = await get_rate_limiter(max_requests=100, window_seconds=60, key_prefix="api")
    if not await limiter.check("user:123"): ...
    async with limiter.track("user:123") as allowed: ...
    usage = await limiter.get_usage("user:123")  # count, limit, remaining, reset_in_seconds

A limiter is only a configuration (limit, window, prefix, fail mode); every count lives in
the state backend, so limiters with the same prefix in different processes share one budget.
`webhook_rate_limiter` and `s3_rate_limiter` are the very limiters the middleware's webhook
and storage rules use: an endpoint that wants the decision calls `check_request(request)`,
which returns the middleware's verdict instead of counting the request a second time.

The extension API is `__all__` and RateLimiter's public methods, as the README's "Python API"
documents them (tests/ratelimit/test_public_api.py holds the list); the other names here are
the package's own.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.http import HttpRequest

from cloudops.ratelimit.backends import state_backend
from cloudops.ratelimit.backends.base import BackendUnavailable, Decision, StateBackend
from cloudops.structured_logging import get_logger

__all__ = [
    "BackendUnavailable",
    "Decision",
    "RateLimiter",
    "get_rate_limiter",
    "get_rate_limiter_sync",
    "s3_rate_limiter",
    "webhook_rate_limiter",
]

logger = get_logger("simpletuner.cloud.ratelimit")

_T = TypeVar("_T")
Clock = Callable[[], float]
# What the middleware leaves on a request it counted: {key_prefix: Decision}.
COUNTED_ATTR = "rate_limit_decisions"


def wall_clock() -> float:
    """Unix time, shared by every process (tests replace it to move time)."""
    return time.time()


class RateLimiter:
    """`max_requests` per sliding `window_seconds`, per key, in the configured backend."""

    def __init__(
        self,
        max_requests: int,
        window_seconds: float,
        key_prefix: str = "",
        *,
        fail_open: bool = True,
        clock: Clock | None = None,
        backend: StateBackend | None = None,
    ) -> None:
        if max_requests < 1 or window_seconds <= 0:
            raise ValueError("max_requests must be >= 1 and window_seconds > 0")
        self.max_requests = max_requests
        self.window_seconds = float(window_seconds)
        self.key_prefix = key_prefix
        self.fail_open = fail_open
        self.clock = clock
        self._backend = backend

    def __repr__(self) -> str:
        return f"RateLimiter({self.max_requests}/{self.window_seconds:g}s, prefix={self.key_prefix!r})"

    def _state(self) -> StateBackend:
        return self._backend or state_backend()

    def _full_key(self, key: str) -> str:
        return f"{self.key_prefix}:{key}" if self.key_prefix else key

    # --- sync ------------------------------------------------------------------------------

    def hit_sync(self, key: str, *, now: float | None = None, record: bool = True) -> Decision:
        """Count one request (record=False: only look). Raises BackendUnavailable."""
        at = (self.clock or wall_clock)() if now is None else now
        return self._state().hit(
            self._full_key(key), limit=self.max_requests, window=self.window_seconds, now=at, record=record
        )

    def check_sync(self, key: str) -> bool:
        """Count one request; True if admitted. A backend outage answers `fail_open`."""
        try:
            return self.hit_sync(key).allowed
        except BackendUnavailable as exc:
            log_outage(exc, fail_open=self.fail_open, where=repr(self))
            return self.fail_open

    @contextmanager
    def track_sync(self, key: str) -> Iterator[bool]:
        yield self.check_sync(key)

    def get_usage_sync(self, key: str) -> dict[str, int]:
        return _usage(self.hit_sync(key, record=False))

    def reset_sync(self, key: str) -> bool:
        return self._state().reset(self._full_key(key))

    # --- async -----------------------------------------------------------------------------

    async def _run(self, fn: Callable[[], _T]) -> _T:
        name = self._state().name
        if name == "memory":
            return fn()
        # The ORM must run in Django's thread-sensitive executor; Redis can use any thread.
        return await sync_to_async(fn, thread_sensitive=name == "database")()

    async def hit(self, key: str, *, now: float | None = None, record: bool = True) -> Decision:
        ahit = getattr(self._state(), "ahit", None)
        if ahit is None:
            return await self._run(lambda: self.hit_sync(key, now=now, record=record))
        at = (self.clock or wall_clock)() if now is None else now
        return await ahit(
            self._full_key(key), limit=self.max_requests, window=self.window_seconds, now=at, record=record
        )

    async def check(self, key: str) -> bool:
        try:
            return (await self.hit(key)).allowed
        except BackendUnavailable as exc:
            log_outage(exc, fail_open=self.fail_open, where=repr(self))
            return self.fail_open

    @asynccontextmanager
    async def track(self, key: str) -> AsyncIterator[bool]:
        """Count the request on entry; the block learns whether it was admitted."""
        yield await self.check(key)

    async def get_usage(self, key: str) -> dict[str, int]:
        return _usage(await self.hit(key, record=False))

    async def reset(self, key: str) -> bool:
        return await self._run(lambda: self.reset_sync(key))

    async def check_request(self, request: HttpRequest, key: str) -> bool:
        """The middleware's verdict if it already counted `request` here; else count it."""
        decision = getattr(request, COUNTED_ATTR, {}).get(self.key_prefix)
        if decision is not None:
            return decision.allowed
        return await self.check(key)

    def check_request_sync(self, request: HttpRequest, key: str) -> bool:
        decision = getattr(request, COUNTED_ATTR, {}).get(self.key_prefix)
        return decision.allowed if decision is not None else self.check_sync(key)


def _usage(decision: Decision) -> dict[str, int]:
    return {
        "count": decision.count,
        "limit": decision.limit,
        "remaining": decision.remaining,
        "reset_in_seconds": math.ceil(decision.reset_in - 1e-9) if decision.count else 0,
    }


_last_outage_log = 0.0


def log_outage(exc: BaseException, *, fail_open: bool, where: str) -> None:
    """Log a backend outage, at most once every 10 s per process (a flood must not flood logs)."""
    global _last_outage_log
    if time.monotonic() - _last_outage_log < 10:
        return
    _last_outage_log = time.monotonic()
    mode = "admitting (fail open)" if fail_open else "refusing (fail closed)"
    logger.error("rate-limit backend unavailable, %s requests: %s", mode, exc, extra={"limiter": where})


def get_rate_limiter_sync(max_requests: int, window_seconds: float, key_prefix: str = "", **kwargs: Any) -> RateLimiter:
    return RateLimiter(max_requests, window_seconds, key_prefix, **kwargs)


async def get_rate_limiter(
    max_requests: int, window_seconds: float, key_prefix: str = "", **kwargs: Any
) -> RateLimiter:
    """A limiter on the configured backend. Async only so that async code awaits it like the
    limiter's other calls; it connects to nothing (the backend is chosen on first use)."""
    return get_rate_limiter_sync(max_requests, window_seconds, key_prefix, **kwargs)


# The presets. The middleware's /api/webhooks/ and /api/cloud/storage/ rules take their limit,
# window and name from these objects and count through them (rules.preset_rule), so a request
# is counted once and each number is written here only.
webhook_rate_limiter = RateLimiter(100, 60, "webhook")
s3_rate_limiter = RateLimiter(50, 60, "s3")
