"""Test settings: the real settings, with SIMPLETUNER_HOME in a fresh temporary directory.

The variable is set before cloudops.settings is imported, so nothing a test run writes
(keys, the SQLite file, outputs) lands in the developer's real ~/.simpletuner. Server
processes that tests start inherit it.
"""

from __future__ import annotations

import os
import tempfile

if not os.environ.get("CLOUDOPS_TEST_HOME_SET"):
    os.environ["SIMPLETUNER_HOME"] = tempfile.mkdtemp(prefix="cloudops-test-")
    os.environ["CLOUDOPS_TEST_HOME_SET"] = "1"

from cloudops.settings import *  # noqa: F403

# Fast password hashing keeps auth tests quick; production keeps Django's default.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# On SQLite the test database is a file in the temporary home, not :memory:, so tests can
# exercise WAL, locking and several processes exactly as the server runs.
_test_db = DATABASES["default"]  # noqa: F405
if _test_db["ENGINE"] == "django.db.backends.sqlite3":
    _test_db["TEST"] = {"NAME": str(SIMPLETUNER_HOME / "config" / "cloud" / "test_jobs.db")}  # noqa: F405

# Serve static files straight from the apps (no collectstatic before tests).
STATIC_ROOT = SIMPLETUNER_HOME / "static"  # noqa: F405
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True

# Each in-process test holds a transaction that the rate limiter's background writer cannot
# see past, so here every check is a statement in the database; the in-memory checks of a
# process alone are tested on their own (tests/ratelimit/test_write_behind.py) and run in
# every server process a test starts (cloudops.settings: on).
RATE_LIMIT_WRITE_BEHIND = False
