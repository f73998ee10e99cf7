"""Operator actions on rate-limit state, shared by the admin and commands."""

from __future__ import annotations

import time

from django.http import HttpRequest

from cloudops import audit_events as events
from cloudops import auditing
from cloudops.ratelimit.backends import state_backend
from cloudops.ratelimit.backends.base import KeyState


def ratelimit_state(*, limit: int = 200) -> list[KeyState]:
    return state_backend().keys(now=time.time(), limit=limit)


def ratelimit_reset(*, key: str, request: HttpRequest | None = None) -> bool:
    """Forget one key's counted requests (the client gets its full budget back); audited."""
    existed = state_backend().reset(key)
    auditing.record(
        event_type=events.RATE_LIMIT_RESET,
        request=request,
        target_type="rate_limit_key",
        target_id=key[:200],
        action="reset",
        details={"key": key, "existed": existed},
    )
    return existed


def ratelimit_prune() -> int:
    return state_backend().prune(now=time.time())
