"""Provider clients by name, from settings.PROVIDER_CLIENTS (checked at start-up)."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from providers.base import Provider


def provider_names() -> list[str]:
    return list(settings.PROVIDER_CLIENTS)


@cache
def _provider_class(path: str) -> type:
    return import_string(path)


def get_provider(name: str) -> Provider:
    """A client for `name`; KeyError if no such provider is configured."""
    return _provider_class(settings.PROVIDER_CLIENTS[name])()
