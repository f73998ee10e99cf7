"""Provider settings read from the environment: a bad value stops start-up naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.config.test_settings import load_settings
from tests.processes import ROOT


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SIMPLETUNER_HTTP_TIMEOUT": "soon"}, "SIMPLETUNER_HTTP_TIMEOUT"),
        ({"SIMPLETUNER_SSL_VERIFY": "maybe"}, "SIMPLETUNER_SSL_VERIFY"),
        ({"HTTPS_PROXY": "proxy.corp:3128"}, "HTTPS_PROXY"),
        ({"SIMPLETUNER_CA_BUNDLE": "/nonexistent/ca.pem"}, "SIMPLETUNER_CA_BUNDLE"),
        ({"REPLICATE_API_BASE_URL": "api.replicate.com"}, "REPLICATE_API_BASE_URL"),
        ({"SIMPLETUNER_LOCAL_COMMANDS": "everyone"}, "SIMPLETUNER_LOCAL_COMMANDS"),
        ({"SIMPLETUNER_CIRCUIT_FAILURE_THRESHOLD": "0"}, "SIMPLETUNER_CIRCUIT_FAILURE_THRESHOLD"),
        ({"SIMPLETUNER_SYNC_INTERVAL": "0"}, "SIMPLETUNER_SYNC_INTERVAL"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(tmp_path: Path, env: dict[str, str], named: str) -> None:
    result = load_settings(tmp_path, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr


def test_the_local_url_follows_the_port(tmp_path: Path) -> None:
    env = {
        "SIMPLETUNER_HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "cloudops.settings",
        "PORT": "9123",
        "PATH": "/usr/bin:/bin",
    }
    code = "from django.conf import settings; print(settings.SIMPLETUNER_LOCAL_URL)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "http://127.0.0.1:9123", done.stderr
