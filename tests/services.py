"""Real backing services for tests: PostgreSQL, MariaDB/MySQL and Redis.

A test that needs one calls `require_service(name)`. Without the server, the test skips
with the reason, unless CLOUDOPS_REQUIRE_SERVICES=1 (set by .ci/run), where it fails.
URLs can be overridden per service with CLOUDOPS_TEST_<NAME>_URL.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

DEFAULT_URLS = {
    "postgres": "postgres://postgres@127.0.0.1:5432/test",
    "mysql": "mysql://root@127.0.0.1:3306/test",
    "redis": "redis://127.0.0.1:6379/15",
}


def service_url(name: str) -> str:
    return os.environ.get(f"CLOUDOPS_TEST_{name.upper()}_URL", DEFAULT_URLS[name])


def services_required() -> bool:
    return os.environ.get("CLOUDOPS_REQUIRE_SERVICES", "") in ("1", "true", "yes")


def _reachable(url: str) -> str | None:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2):
            return None
    except OSError as exc:
        return str(exc)


def require_service(name: str) -> str:
    """The service's URL; skip (or fail under CLOUDOPS_REQUIRE_SERVICES=1) if unreachable."""
    url = service_url(name)
    problem = _reachable(url)
    if problem is not None:
        reason = f"{name} is not reachable at {url} ({problem}); start it or set CLOUDOPS_TEST_{name.upper()}_URL"
        if services_required():
            pytest.fail(reason + " [CLOUDOPS_REQUIRE_SERVICES=1]")
        pytest.skip(reason)
    return url
