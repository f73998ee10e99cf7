"""Provider configuration rows kept per process for the hot read paths (webhook deliveries).

A webhook used to read its provider's row on every delivery. Here a process keeps each row it
read, tagged with a generation token held in the Django cache; saving or deleting a row (the
API, the admin, a command: every write goes through Model.save/delete) sends a signal that
drops this process's copies and replaces the token, so every process reads the row again on its
next delivery. With REDIS_URL the token is shared and a change reaches every process at once;
without it the cache is this process's memory, which is the deployment of one process (several
processes need Redis, docs/deploying.md). While Redis is unavailable the token reads as missing
and every read goes to the database: slower, never stale.

Callers must not modify the instance they get (it is shared by the threads of this process);
code that changes a configuration reads it with providers.config.provider_config_get.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from django.core.cache import cache
from django.db import transaction

from providers.config import provider_config_get
from providers.models import ProviderConfig
from providers.registry import provider_names

GENERATION_KEY = "providers:config:generation"

_rows: dict[str, tuple[str, ProviderConfig]] = {}
_lock = threading.Lock()


def provider_config_cached(name: str) -> ProviderConfig:
    """The configuration of provider `name` as of its last change (UnknownProvider if none)."""
    generation = cache.get(GENERATION_KEY)
    if generation is None:
        return _reload(name)
    with _lock:
        kept = _rows.get(name)
    if kept is not None and kept[0] == generation:
        return kept[1]
    return _reload(name, generation)


def provider_configs_cached() -> dict[str, ProviderConfig]:
    """provider_config_cached for every registered provider."""
    return {name: provider_config_cached(name) for name in provider_names()}


def _reload(name: str, generation: str | None = None) -> ProviderConfig:
    config = provider_config_get(name)
    if generation is None:
        # No token yet (first read, a cleared or unavailable cache): start one, and keep the
        # row under it. If add refuses, another process started one (or a change replaced
        # it) after this read began: the row is read again next time.
        generation = secrets.token_hex(8)
        if not cache.add(GENERATION_KEY, generation, None):
            return config
    with _lock:
        _rows[name] = (generation, config)
    return config


def provider_config_changed(**kwargs: Any) -> None:
    """post_save / post_delete receiver: every process reads its rows again once the change
    is committed (a token replaced before the commit could tag the old row as current)."""
    transaction.on_commit(_new_generation)


def _new_generation() -> None:
    provider_config_forget()
    cache.set(GENERATION_KEY, secrets.token_hex(8), None)


def provider_config_forget() -> None:
    """Drop this process's copies (the signal above; tests whose database was emptied)."""
    with _lock:
        _rows.clear()
