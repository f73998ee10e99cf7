"""Whose budget a request spends: the client IP, unless an app keys its requests otherwise.

An app registers a RequestKey by dotted path in settings.RATE_LIMIT_KEYS under a name rules
use as their `key` (the S3 endpoint: "storage", per job credential, storage/ratelimit.py).
A registered key also applies to requests under its own paths whatever rule matches them
(`applies`), so custom rules cannot put a job's uploads back on the IP's budget.
"""

from __future__ import annotations

from functools import cache
from typing import Protocol

from django.conf import settings
from django.http import HttpRequest
from django.utils.module_loading import import_string


class RequestKey(Protocol):
    def applies(self, path: str) -> bool:
        """Whether requests to `path` are keyed by this key, whatever rule matches them."""

    def key(self, request: HttpRequest, ip: str) -> str:
        """The budget's key (sync: it may query the database)."""


@cache
def _registered() -> dict[str, RequestKey]:
    return {name: import_string(path) for name, path in settings.RATE_LIMIT_KEYS.items()}


def request_key_for(rule_key: str, path: str) -> RequestKey | None:
    """The registered key a request spends under a rule keyed `rule_key`, or None for the IP."""
    keys = _registered()
    if rule_key in keys:
        return keys[rule_key]
    return next((key for key in keys.values() if key.applies(path)), None)
