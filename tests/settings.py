"""Test settings: the real settings, with SIMPLETUNER_HOME in a fresh temporary directory.

The variable is set before cloudops.settings is imported, so nothing a test run writes
(keys, the SQLite file, outputs) lands in the developer's real ~/.simpletuner. Server
processes that tests start inherit it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

if not os.environ.get("CLOUDOPS_TEST_HOME_SET"):
    os.environ["SIMPLETUNER_HOME"] = tempfile.mkdtemp(prefix="cloudops-test-")
    os.environ["CLOUDOPS_TEST_HOME_SET"] = "1"

from cloudops.settings import *  # noqa: F403

# Fast password hashing keeps auth tests quick; production keeps Django's default.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# On SQLite the test database is a file in the temporary home, not :memory:, so tests can
# exercise WAL, locking and several processes exactly as the server runs.
# CLOUDOPS_TEST_DB_NAME (meant for the shared PostgreSQL/MariaDB servers) names the file there
# too, instead of a relative path that would land in the checkout with its -wal and lock files.
_test_db = DATABASES["default"]  # noqa: F405
if (
    _test_db["ENGINE"] == "django.db.backends.sqlite3"
    and not Path(_test_db.get("TEST", {}).get("NAME") or "").is_absolute()
):
    _name = _test_db.get("TEST", {}).get("NAME") or "test_jobs"
    _test_db["TEST"] = {"NAME": str(SIMPLETUNER_HOME / "config" / "cloud" / f"{Path(_name).name}.db")}  # noqa: F405

# Serve static files straight from the apps (no collectstatic before tests).
STATIC_ROOT = SIMPLETUNER_HOME / "static"  # noqa: F405
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True
