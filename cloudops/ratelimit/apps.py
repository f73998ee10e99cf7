from __future__ import annotations

from django.apps import AppConfig


class RateLimitConfig(AppConfig):
    name = "cloudops.ratelimit"
    label = "ratelimit"
    verbose_name = "Rate limiting"

    def ready(self) -> None:
        from cloudops.ratelimit import checks, state  # noqa: F401 - registers checks and signal handlers
