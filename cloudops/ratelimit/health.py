"""The `rate_limit_backend` health component."""

from __future__ import annotations

import time

from django.conf import settings

from cloudops.health import Component, elapsed_ms, guarded
from cloudops.ratelimit.backends import state_backend
from cloudops.ratelimit.backends.base import BackendUnavailable


@guarded("rate_limit_backend")
def check_rate_limit_backend() -> Component | None:
    """Degraded, not unhealthy, when the backend is down: requests are still served (or
    refused) by each rule's fail mode, which the message states."""
    if settings.RATE_LIMIT_CALLS <= 0:
        return None
    started = time.perf_counter()
    try:
        message = state_backend().ping()
    except BackendUnavailable as exc:
        latency = elapsed_ms(started)
        mode = "general traffic admitted" if settings.RATE_LIMIT_FAIL_OPEN else "all limited traffic refused"
        return Component(
            "rate_limit_backend",
            "degraded",
            f"Rate-limit backend ({settings.STATE_BACKEND}) unavailable: {mode}, auth endpoints refused",
            latency,
            error=str(exc),
        )
    return Component("rate_limit_backend", "healthy", message, elapsed_ms(started))
