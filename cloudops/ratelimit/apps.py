from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_counters(*, using: str = "default", **kwargs: Any) -> None:
    # The counter row exists before the first violation, so violations only ever update a
    # locked row (creating it concurrently deadlocks on InnoDB, see audit/apps.py).
    from django.db import router

    from cloudops.ratelimit.backends.database import VIOLATIONS
    from cloudops.ratelimit.models import RateLimitCounter

    if router.allow_migrate_model(using, RateLimitCounter):
        RateLimitCounter.objects.using(using).get_or_create(name=VIOLATIONS)


class RateLimitConfig(AppConfig):
    name = "cloudops.ratelimit"
    label = "ratelimit"
    verbose_name = "Rate limiting"

    def ready(self) -> None:
        from cloudops.ratelimit import backends, checks  # noqa: F401 - registers signal handlers and checks

        # post_migrate also runs after `flush`, which test databases use between tests.
        post_migrate.connect(_ensure_counters, sender=self, dispatch_uid="ratelimit.ensure_counters")
