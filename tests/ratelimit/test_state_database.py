"""STATE_BACKEND_URL: the rate-limit state in a database of its own (alias `ratelimit`)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT

REQUEST = """
import django
django.setup()
from django.test import Client
response = Client().get("/api/cloud/jobs", REMOTE_ADDR="203.0.113.60", HTTP_HOST="localhost")
print(response.status_code, response["X-RateLimit-Remaining"])
"""


def run(env: dict[str, str], *argv: str) -> str:
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_state_lives_only_in_the_state_database(tmp_path: Path) -> None:
    main, state = tmp_path / "main.db", tmp_path / "state.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STATE_BACKEND", "REDIS_URL", "RATE_LIMIT"))}
    env.update(
        SIMPLETUNER_HOME=str(tmp_path / "home"),
        DJANGO_SETTINGS_MODULE="cloudops.settings",
        DATABASE_URL=f"sqlite:///{main}",
        STATE_BACKEND="database",
        STATE_BACKEND_URL=f"sqlite:///{state}",
    )
    run(env, "manage.py", "migrate", "-v", "0")
    run(env, "manage.py", "migrate", "--database", "ratelimit", "-v", "0")
    assert run(env, "-c", REQUEST).split() == ["401", "99"]
    assert run(env, "-c", REQUEST).split() == ["401", "98"]
    with sqlite3.connect(state) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert db.execute("SELECT key FROM ratelimit_ratelimitbucket").fetchall() == [("default:203.0.113.60",)]
    assert {"ratelimit_ratelimitbucket", "ratelimit_ratelimitcounter"} <= tables
    assert "auth_user" not in tables and "audit_auditentry" not in tables
    with sqlite3.connect(main) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "ratelimit_ratelimitbucket" not in tables and "auth_user" in tables
