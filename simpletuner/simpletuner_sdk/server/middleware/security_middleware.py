"""RateLimitMiddleware: cloudops.ratelimit.middleware's.

The guide adds it with FastAPI's `app.add_middleware(...)`; in Django it is listed in
settings.MIDDLEWARE already and takes its arguments from the RATE_LIMIT_* settings, or from
`RateLimitMiddleware.configure(...)` (docs/python-scripts.md shows both).
"""

from __future__ import annotations

from simpletuner._django import ensure_django

ensure_django()

from cloudops.ratelimit.middleware import RateLimitMiddleware  # noqa: E402

__all__ = ["RateLimitMiddleware"]
