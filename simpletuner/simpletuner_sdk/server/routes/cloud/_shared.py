"""The preset limiters: the very objects the middleware's webhook and storage rules count through."""

from __future__ import annotations

from simpletuner._django import ensure_django

ensure_django()

from cloudops.ratelimit.limiter import s3_rate_limiter, webhook_rate_limiter  # noqa: E402

__all__ = ["s3_rate_limiter", "webhook_rate_limiter"]
