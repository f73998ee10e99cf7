"""The body bound and the event-stream caps: read once at start-up, bad values stop the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT

NAMES = [
    "SIMPLETUNER_MAX_REQUEST_BYTES",
    "FILE_UPLOAD_MAX_MEMORY_SIZE",
    "DATA_UPLOAD_MAX_MEMORY_SIZE",
    "SIMPLETUNER_EVENTS_MAX_PER_USER",
    "SIMPLETUNER_EVENTS_MAX_STREAMS",
    "SIMPLETUNER_EVENTS_SLOT_LEASE",
]


def load(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLETUNER_")}
    clean.update({"SIMPLETUNER_HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "cloudops.settings", **env})
    code = f"from django.conf import settings as s; import json; print(json.dumps([getattr(s, n) for n in {NAMES!r}]))"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True)


def test_without_variables_the_body_bound_and_the_stream_caps_take_their_defaults(tmp_path: Path) -> None:
    result = load(tmp_path)
    assert result.returncode == 0, result.stderr
    # The bound stays under Django's in-memory limits (2.5 MiB), which stay at their defaults.
    assert json.loads(result.stdout) == [1048576, 2621440, 2621440, 10, 500, 60.0]


def test_env_values_are_read_and_django_parses_in_memory_what_the_bound_admits(tmp_path: Path) -> None:
    env = {
        "SIMPLETUNER_MAX_REQUEST_BYTES": str(8 * 1024 * 1024),
        "SIMPLETUNER_EVENTS_MAX_PER_USER": "3",
        "SIMPLETUNER_EVENTS_MAX_STREAMS": "2000",
        "SIMPLETUNER_EVENTS_SLOT_LEASE": "30",
    }
    result = load(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [8388608, 8388608, 8388608, 3, 2000, 30.0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SIMPLETUNER_MAX_REQUEST_BYTES", "1MB"),
        ("SIMPLETUNER_MAX_REQUEST_BYTES", "100"),
        ("SIMPLETUNER_EVENTS_MAX_PER_USER", "0"),
        ("SIMPLETUNER_EVENTS_MAX_STREAMS", "-1"),
        ("SIMPLETUNER_EVENTS_SLOT_LEASE", "soon"),
    ],
)
def test_a_bad_value_stops_the_process_naming_the_variable(tmp_path: Path, name: str, value: str) -> None:
    result = load(tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr
