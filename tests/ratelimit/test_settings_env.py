"""Rate-limit environment variables: read once at start-up, bad values stop the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT

SHOW = (
    "from django.conf import settings as s; import json; print(json.dumps([s.RATE_LIMIT_CALLS, s.RATE_LIMIT_PERIOD, "
    "s.RATE_LIMIT_FAIL_OPEN, s.STATE_BACKEND, s.RATE_LIMIT_REDIS_URL, s.RATE_LIMIT_DATABASE, s.RATE_LIMIT_RULES]))"
)


def load(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RATE_LIMIT", "STATE_BACKEND", "REDIS_URL"))}
    clean.update({"SIMPLETUNER_HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "cloudops.settings", **env})
    return subprocess.run([sys.executable, "-c", SHOW], cwd=ROOT, env=clean, capture_output=True, text=True)


def test_the_defaults_are_the_guides(tmp_path: Path) -> None:
    result = load(tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [100, 60, True, "database", "", "default", []]


def test_redis_url_makes_redis_the_state_backend(tmp_path: Path) -> None:
    values = json.loads(load(tmp_path, REDIS_URL="redis://cache:6379/2").stdout)
    assert values[3:5] == ["redis", "redis://cache:6379/2"]
    values = json.loads(load(tmp_path, REDIS_URL="redis://a/0", STATE_BACKEND_URL="redis://b/1").stdout)
    assert values[3:5] == ["redis", "redis://b/1"]


def test_a_state_backend_url_keeps_the_state_in_a_database_of_its_own(tmp_path: Path) -> None:
    result = load(tmp_path, STATE_BACKEND="database", STATE_BACKEND_URL=f"sqlite:///{tmp_path}/state.db")
    assert json.loads(result.stdout)[5] == "ratelimit"


def test_env_values_are_read(tmp_path: Path) -> None:
    rules = '[["^/api/cloud/expensive$", 5, 300, ["POST"]], ["^/api/cloud/public$", 1000, 60, null, true]]'
    result = load(
        tmp_path, RATE_LIMIT_CALLS="0", RATE_LIMIT_PERIOD="30", RATE_LIMIT_FAIL_OPEN="false", RATE_LIMIT_RULES=rules
    )
    assert json.loads(result.stdout) == [0, 30, False, "database", "", "default", json.loads(rules)]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RATE_LIMIT_CALLS": "lots"}, "RATE_LIMIT_CALLS='lots' is not a valid int"),
        ({"RATE_LIMIT_PERIOD": "0"}, "RATE_LIMIT_PERIOD='0' must be at least 1"),
        ({"RATE_LIMIT_FAIL_OPEN": "maybe"}, "RATE_LIMIT_FAIL_OPEN"),
        ({"STATE_BACKEND": "memcached"}, "STATE_BACKEND='memcached' is not one of database, redis, memory"),
        ({"STATE_BACKEND": "redis"}, "STATE_BACKEND=redis needs STATE_BACKEND_URL or REDIS_URL"),
        ({"STATE_BACKEND_URL": "oracle://x/y"}, "STATE_BACKEND_URL must be a sqlite, postgres or mysql URL"),
        ({"RATE_LIMIT_RULES": "[[1, 2"}, "RATE_LIMIT_RULES is not valid JSON"),
        ({"RATE_LIMIT_RULES": '[["(", 5, 60, null]]'}, "pattern is not a regular expression"),
        ({"RATE_LIMIT_RULES": '[["^/x", 0, 60, null]]'}, "calls must be an integer >= 1"),
        ({"RATE_LIMIT_RULES": '[["^/x", 5, 60, "POST"]]'}, "methods must be a list of method names or null"),
    ],
)
def test_bad_values_stop_the_process_naming_the_variable(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = load(tmp_path, **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_checking_the_rules_at_start_up_loads_only_the_django_free_parser(tmp_path: Path) -> None:
    code = (
        "import json, sys; import cloudops.settings; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('cloudops.ratelimit', 'django.http')))))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RATE_LIMIT", "STATE_BACKEND", "REDIS_URL"))}
    env.update(SIMPLETUNER_HOME=str(tmp_path), RATE_LIMIT_RULES='[["^/api/x$", 1, 60, null]]')
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["cloudops.ratelimit", "cloudops.ratelimit.spec"]
