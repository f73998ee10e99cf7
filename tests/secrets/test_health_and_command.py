from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from tests.processes import ROOT
from tests.secrets.conftest import REGION, FakeClock, env_without_secrets, write_secrets_file
from tests.secrets.servers import VAULT_ROOT_TOKEN, ServerProcess

pytestmark = pytest.mark.django_db


def secrets_component(client: APIClient) -> dict[str, Any]:
    body = client.get("/api/cloud/health").json()
    return next(c for c in body["components"] if c["name"] == "secrets")


def run_command(*args: str) -> tuple[str, int]:
    out = StringIO()
    try:
        call_command("secrets_check", *args, stdout=out, stderr=StringIO())
    except CommandError as exc:
        return out.getvalue(), exc.returncode
    return out.getvalue(), 0


def test_health_names_the_provider_of_each_required_key(
    clock: FakeClock, home: Path, anon: APIClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SIMPLETUNER_REQUIRED_SECRETS = ["REPLICATE_API_TOKEN", "REPLICATE_WEBHOOK_SECRET"]
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_env_value")
    write_secrets_file(home, {"REPLICATE_WEBHOOK_SECRET": "whsec_file_value"})
    component = secrets_component(anon)
    assert component["status"] == "healthy"
    assert component["message"] == "2 required secrets configured"
    assert component["details"] == {
        "sources": {"REPLICATE_API_TOKEN": "environment", "REPLICATE_WEBHOOK_SECRET": "file"},
        "providers": {"environment": "ok", "file": "ok"},
    }
    assert component["latency_ms"] >= 0


def test_health_with_no_required_keys_is_healthy(clock: FakeClock, anon: APIClient, settings: Settings) -> None:
    settings.SIMPLETUNER_REQUIRED_SECRETS = []
    component = secrets_component(anon)
    assert (component["status"], component["message"]) == ("healthy", "No secrets required by the enabled providers")


def test_a_refused_file_degrades_health_and_only_staff_see_why(
    clock: FakeClock, home: Path, anon: APIClient, staff_client: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_env_value")
    path = write_secrets_file(home, {"HF_TOKEN": "hf_value"}, mode=0o644)
    public = secrets_component(anon)
    assert public["status"] == "degraded"
    assert public["message"] == "Unavailable: file"
    assert "error" not in public and str(path) not in json.dumps(public)
    staff = secrets_component(staff_client)
    assert (
        staff["error"]
        == f"file: refusing {path}: it is accessible by group or others (mode 0644); run: chmod 600 {path}"
    )


def test_the_command_prints_keys_sources_and_providers_and_exits_0(
    clock: FakeClock, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_env_value")
    write_secrets_file(home, {"HF_TOKEN": "hf_file_value"})
    output, code = run_command()
    assert code == 0
    lines = output.splitlines()
    assert lines[0].split() == ["KEY", "SOURCE", "STATUS"]
    assert lines[1].split() == ["REPLICATE_API_TOKEN", "environment", "ok", "(required)"]
    assert ["HF_TOKEN", "file", "ok"] in [line.split() for line in lines]
    assert ["REPLICATE_WEBHOOK_SECRET", "-", "not", "set"] in [line.split() for line in lines]
    providers = lines[lines.index("") + 1 :]
    assert providers[0].split() == ["PROVIDER", "STATUS", "LATENCY", "DETAIL"]
    assert providers[1].split()[:2] == ["environment", "ok"]
    assert providers[2].split()[:2] == ["file", "ok"] and str(home / "secrets.json") in providers[2]
    assert lines[-1] == "OK: 2 provider(s) reachable, 1 required key(s) found"
    assert "r8_env_value" not in output and "hf_file_value" not in output


def test_the_command_exits_1_when_a_required_key_is_missing(clock: FakeClock) -> None:
    output, code = run_command()
    assert code == 1
    assert ["REPLICATE_API_TOKEN", "-", "missing", "(required)"] in [line.split() for line in output.splitlines()]


def test_the_command_checks_extra_keys_on_request(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8")
    monkeypatch.setenv("MY_EXTRA", "extra-value")
    output, code = run_command("--key", "MY_EXTRA", "--key", "ABSENT")
    assert code == 0
    rows = [line.split() for line in output.splitlines()]
    assert ["MY_EXTRA", "environment", "ok"] in rows
    assert ["ABSENT", "-", "not", "set"] in rows


def test_the_command_exits_3_when_a_provider_is_unavailable(
    clock: FakeClock, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8")
    (home / "secrets.json").write_text("{not json")
    (home / "secrets.json").chmod(0o600)
    output, code = run_command("--json")
    assert code == 3
    document = json.loads(output)
    assert document["ok"] is False
    file_status = next(p for p in document["providers"] if p["name"] == "file")
    assert file_status["status"] == "unavailable"
    assert "is not valid JSON" in file_status["error"]
    assert document["keys"][0] == {
        "key": "REPLICATE_API_TOKEN",
        "source": "environment",
        "status": "ok",
        "required": True,
    }


def command_process(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "secrets_check"],
        cwd=ROOT,
        env={**env_without_secrets(), "DJANGO_SETTINGS_MODULE": "cloudops.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.services
def test_the_command_as_operators_run_it_reads_every_store_from_the_environment(
    tmp_path: Path,
    moto: ServerProcess,
    bao: ServerProcess,
    use_aws: Callable[..., str],
    use_vault: Callable[..., str],
) -> None:
    secret_name = use_aws(moto, {"HF_TOKEN": "hf_aws_value"})
    vault_path = use_vault(bao, {"REPLICATE_WEBHOOK_SECRET": "whsec_vault_value"})
    home = tmp_path / "process-home"
    home.mkdir()
    write_secrets_file(home, {"SIMPLETUNER_METRICS_TOKEN": "metrics_file_value"}, name="secrets.yaml")
    env = {
        "SIMPLETUNER_HOME": str(home),
        "SIMPLETUNER_REQUIRED_SECRETS": "REPLICATE_API_TOKEN,HF_TOKEN,REPLICATE_WEBHOOK_SECRET,SIMPLETUNER_METRICS_TOKEN",
        "REPLICATE_API_TOKEN": "r8_env_value",
        "SIMPLETUNER_AWS_SECRET_NAME": secret_name,
        "AWS_REGION": REGION,
        "SIMPLETUNER_VAULT_PATH": vault_path,
        "VAULT_ADDR": bao.url,
        "VAULT_TOKEN": VAULT_ROOT_TOKEN,
    }
    result = command_process(env)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["REPLICATE_API_TOKEN", "environment", "ok", "(required)"] in rows
    assert ["HF_TOKEN", "aws-secrets-manager", "ok", "(required)"] in rows
    assert ["REPLICATE_WEBHOOK_SECRET", "vault", "ok", "(required)"] in rows
    assert ["SIMPLETUNER_METRICS_TOKEN", "file", "ok", "(required)"] in rows
    assert [row[:2] for row in rows if row and row[0] in ("environment", "file", "aws-secrets-manager", "vault")] == [
        ["environment", "ok"],
        ["file", "ok"],
        ["aws-secrets-manager", "ok"],
        ["vault", "ok"],
    ]
    for value in ("r8_env_value", "hf_aws_value", "whsec_vault_value", "metrics_file_value", VAULT_ROOT_TOKEN):
        assert value not in result.stdout + result.stderr

    env["VAULT_ADDR"] = "http://127.0.0.1:9"
    result = command_process(env)
    assert result.returncode == 3
    assert "unavailable secrets provider: vault" in result.stderr
    assert ["REPLICATE_WEBHOOK_SECRET", "-", "missing", "(required)"] in [
        line.split() for line in result.stdout.splitlines()
    ]
