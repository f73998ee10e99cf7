"""The output-storage health component and the storage/HTTPS settings."""

from __future__ import annotations

import os
import subprocess
import sys

from django.test import Client

from tests.processes import ROOT


def _component(client: Client) -> dict:
    document = client.get("/api/cloud/health").json()
    return next(c for c in document["components"] if c["name"] == "output_storage")


def test_health_reports_free_disk_for_outputs(settings) -> None:
    component = _component(Client())
    assert component["status"] == "healthy"
    assert component["details"]["free_bytes"] > 0
    settings.SIMPLETUNER_S3_MIN_FREE_BYTES = 1024**6
    response = Client().get("/api/cloud/health")
    assert response.status_code == 503
    assert _component(Client())["status"] == "unhealthy"
    assert "uploads are refused" in _component(Client())["message"]


def _settings_error(**env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", "import cloudops.settings"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    return result.stderr.strip().splitlines()[-1]


def test_a_certificate_without_a_key_stops_start_up(tmp_path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    assert "must be set together" in _settings_error(SIMPLETUNER_SSL_CERT=str(cert))


def test_an_unreadable_certificate_stops_start_up(tmp_path) -> None:
    message = _settings_error(
        SIMPLETUNER_SSL_CERT=str(tmp_path / "missing.pem"), SIMPLETUNER_SSL_KEY=str(tmp_path / "k")
    )
    assert "SIMPLETUNER_SSL_CERT" in message and "not a readable file" in message


def test_bad_storage_limits_name_the_variable() -> None:
    assert "SIMPLETUNER_S3_MAX_OBJECT_BYTES" in _settings_error(SIMPLETUNER_S3_MAX_OBJECT_BYTES="lots")
    assert "SIMPLETUNER_SERVER" in _settings_error(SIMPLETUNER_SERVER="gunicorn")
