"""Secrets settings come from the environment and a bad value stops start-up naming the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT

PRINT = (
    "import json; from django.conf import settings as s; print(json.dumps({k: str(getattr(s, k)) for k in ["
    "'SIMPLETUNER_SECRETS_TTL', 'SIMPLETUNER_SECRETS_RETRY', 'SIMPLETUNER_SECRETS_TIMEOUT', 'SIMPLETUNER_SECRETS_FILE', "
    "'SIMPLETUNER_REQUIRED_SECRETS', 'SIMPLETUNER_AWS_SECRET_NAME', 'SIMPLETUNER_AWS_REGION', "
    "'SIMPLETUNER_VAULT_ADDR', 'SIMPLETUNER_VAULT_PATH', 'SIMPLETUNER_VAULT_MOUNT']}))"
)
VARIABLES = [
    "SIMPLETUNER_SECRETS_TTL",
    "SIMPLETUNER_SECRETS_RETRY",
    "SIMPLETUNER_SECRETS_TIMEOUT",
    "SIMPLETUNER_SECRETS_FILE",
    "SIMPLETUNER_REQUIRED_SECRETS",
    "SIMPLETUNER_AWS_SECRET_NAME",
    "AWS_REGION",
    "SIMPLETUNER_VAULT_PATH",
    "SIMPLETUNER_VAULT_MOUNT",
    "VAULT_ADDR",
    "BAO_ADDR",
]


def load(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    clean.update({"SIMPLETUNER_HOME": str(tmp_path / "home"), "DJANGO_SETTINGS_MODULE": "cloudops.settings", **env})
    return subprocess.run([sys.executable, "-c", PRINT], cwd=ROOT, env=clean, capture_output=True, text=True)


def test_without_variables_the_secrets_settings_take_their_defaults(tmp_path: Path) -> None:
    result = load(tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "SIMPLETUNER_SECRETS_TTL": "300.0",
        "SIMPLETUNER_SECRETS_RETRY": "10.0",
        "SIMPLETUNER_SECRETS_TIMEOUT": "5.0",
        "SIMPLETUNER_SECRETS_FILE": "None",
        "SIMPLETUNER_REQUIRED_SECRETS": "[]",
        "SIMPLETUNER_AWS_SECRET_NAME": "",
        "SIMPLETUNER_AWS_REGION": "None",
        "SIMPLETUNER_VAULT_ADDR": "",
        "SIMPLETUNER_VAULT_PATH": "",
        "SIMPLETUNER_VAULT_MOUNT": "secret",
    }


def test_every_variable_is_read(tmp_path: Path) -> None:
    result = load(
        tmp_path,
        SIMPLETUNER_SECRETS_TTL="60",
        SIMPLETUNER_SECRETS_RETRY="2.5",
        SIMPLETUNER_SECRETS_TIMEOUT="1",
        SIMPLETUNER_SECRETS_FILE=str(tmp_path / "s.yaml"),
        SIMPLETUNER_REQUIRED_SECRETS="HF_TOKEN, REPLICATE_API_TOKEN,HF_TOKEN",
        SIMPLETUNER_AWS_SECRET_NAME="prod/cloudops",
        AWS_REGION="eu-central-1",
        SIMPLETUNER_VAULT_PATH="/cloudops/prod/",
        SIMPLETUNER_VAULT_MOUNT="kv",
        BAO_ADDR="https://bao.internal:8200/",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "SIMPLETUNER_SECRETS_TTL": "60.0",
        "SIMPLETUNER_SECRETS_RETRY": "2.5",
        "SIMPLETUNER_SECRETS_TIMEOUT": "1.0",
        "SIMPLETUNER_SECRETS_FILE": str((tmp_path / "s.yaml").resolve()),
        "SIMPLETUNER_REQUIRED_SECRETS": "['HF_TOKEN', 'REPLICATE_API_TOKEN']",
        "SIMPLETUNER_AWS_SECRET_NAME": "prod/cloudops",
        "SIMPLETUNER_AWS_REGION": "eu-central-1",
        "SIMPLETUNER_VAULT_ADDR": "https://bao.internal:8200",
        "SIMPLETUNER_VAULT_PATH": "cloudops/prod",
        "SIMPLETUNER_VAULT_MOUNT": "kv",
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SIMPLETUNER_SECRETS_TTL": "five minutes"}, "SIMPLETUNER_SECRETS_TTL='five minutes' is not a valid float"),
        ({"SIMPLETUNER_SECRETS_RETRY": "-1"}, "SIMPLETUNER_SECRETS_RETRY='-1' must be at least 0"),
        ({"SIMPLETUNER_SECRETS_TIMEOUT": "0"}, "SIMPLETUNER_SECRETS_TIMEOUT='0' must be at least 0.1"),
        (
            {"SIMPLETUNER_SECRETS_FILE": "/etc/cloudops/secrets.txt"},
            "SIMPLETUNER_SECRETS_FILE='/etc/cloudops/secrets.txt' must end in .json, .yaml or .yml",
        ),
        (
            {"SIMPLETUNER_REQUIRED_SECRETS": "HF_TOKEN,not a name"},
            "SIMPLETUNER_REQUIRED_SECRETS: 'not a name' is not a valid secret name",
        ),
        ({"SIMPLETUNER_VAULT_PATH": "cloudops"}, "SIMPLETUNER_VAULT_PATH is set but VAULT_ADDR (or BAO_ADDR) is not"),
        (
            {"SIMPLETUNER_VAULT_PATH": "cloudops", "VAULT_ADDR": "vault:8200"},
            "VAULT_ADDR='vault:8200' must be an http(s) URL",
        ),
        (
            {"SIMPLETUNER_VAULT_PATH": "cloudops", "VAULT_ADDR": "http://vault:8200", "SIMPLETUNER_VAULT_MOUNT": "/"},
            "SIMPLETUNER_VAULT_MOUNT must not be empty",
        ),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = load(tmp_path, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr
