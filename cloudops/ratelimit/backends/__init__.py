"""Where the limiter's state lives, and the backend this process uses.

`state_backend()` builds the backend STATE_BACKEND names (`database`, `redis` or `memory`, with
STATE_BACKEND_URL) on first use; base.py holds the contract and the sliding-window rule that
every backend applies.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from cloudops.ratelimit.backends.base import StateBackend

_built: StateBackend | None = None
_building = threading.Lock()


def state_backend() -> StateBackend:
    """One backend object per process; it holds a connection pool, never counts (those live
    in the database or Redis, so every process sees the same state). Built under a lock: a
    server's request threads all ask at its first requests, and functools.cache would let each
    build one (the first import of the backend's module lets the others in), each a member of
    a SQLite state's seat, so the process never sat alone (writebehind.py)."""
    global _built
    backend = _built
    if backend is None:
        with _building:
            if _built is None:
                _built = _build()
            backend = _built
    return backend


def _build() -> StateBackend:
    kind = settings.STATE_BACKEND
    if kind == "redis":
        from cloudops.ratelimit.backends.redis import RedisBackend

        return RedisBackend(settings.RATE_LIMIT_REDIS_URL, timeout=settings.RATE_LIMIT_REDIS_TIMEOUT)
    if kind == "memory":
        from cloudops.ratelimit.backends.memory import MemoryBackend

        return MemoryBackend()
    from cloudops.ratelimit.backends.database import DatabaseBackend

    return DatabaseBackend(settings.RATE_LIMIT_DATABASE, write_behind=settings.RATE_LIMIT_WRITE_BEHIND)


@receiver(setting_changed)
def _forget_backend(*, setting: str, **kwargs: Any) -> None:
    global _built
    if setting.startswith(("STATE_BACKEND", "RATE_LIMIT_")):
        with _building:
            backend, _built = _built, None
        close = getattr(backend, "close", None)
        if close is not None:
            close()  # a database backend writes what it holds in memory and leaves


def _new_lock_after_fork() -> None:
    global _building
    _building = threading.Lock()  # a child may fork while another thread builds: never held in it


os.register_at_fork(after_in_child=_new_lock_after_fork)
