"""`get_rate_limiter` (and its sync twin), as in the guide: cloudops.ratelimit.limiter's."""

from __future__ import annotations

from simpletuner._django import ensure_django

ensure_django()

from cloudops.ratelimit.limiter import RateLimiter, get_rate_limiter, get_rate_limiter_sync  # noqa: E402

__all__ = ["RateLimiter", "get_rate_limiter", "get_rate_limiter_sync"]
