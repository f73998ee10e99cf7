"""The API answers as its OpenAPI schema says: schemathesis against a real server process,
over every operation, with the checks for server errors, status codes, response schemas, and
schema-valid/invalid requests accepted/refused (tests/schema/schemathesis.toml)."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.processes import ROOT, django_env
from tests.providers.cleanup import kill_processes_under
from tests.server.live import free_port, running
from tests.services import require_tool

CONFIG = Path(__file__).with_name("schemathesis.toml")


def session_headers() -> list[str]:
    """A throwaway superuser's session (cookie and CSRF token): a key would be revoked by the
    run's own DELETE /api/auth/api-keys/{id}, a session survives everything but logout."""
    user = get_user_model().objects.create_superuser("schemathesis", password=secrets.token_urlsafe(24))
    client = Client()
    client.force_login(user)
    csrf = secrets.token_hex(16)  # 32 characters: a valid unmasked CSRF secret
    cookie = f"sessionid={client.cookies['sessionid'].value}; csrftoken={csrf}"
    return ["-H", f"Cookie: {cookie}", "-H", f"X-CSRFToken: {csrf}"]


@pytest.mark.slow
# The run itself may take up to its own 900 s bound (a bounded example count, but on a loaded
# 2-core machine against MariaDB it passed 300 s): pytest's default would cut it first.
@pytest.mark.timeout(960)
@pytest.mark.django_db(transaction=True)
def test_the_api_answers_as_its_openapi_schema_says(tmp_path: Path) -> None:
    schemathesis = require_tool("schemathesis")
    headers = session_headers()
    jobs = tmp_path / "jobs"
    port = free_port()
    env = django_env(
        PORT=str(port),
        RATE_LIMIT_CALLS="0",
        SIMPLETUNER_BACKGROUND_SYNC="false",
        SIMPLETUNER_LOCAL_JOBS_DIR=str(jobs),
        SIMPLETUNER_LOCAL_COMMANDS="none",
        # Replicate is unreachable on purpose: its failures must be answered as documented.
        REPLICATE_API_BASE_URL="http://127.0.0.1:9/v1",
        SIMPLETUNER_HTTP_RETRIES="0",
    )
    argv = [sys.executable, "manage.py", "serve"]
    try:
        with running(argv, env, port, tmp_path / "server.log") as base:
            run = subprocess.run(
                [schemathesis, "--config-file", str(CONFIG), "run", f"{base}/api/schema/", *headers, "--no-color"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=900,
            )
    finally:
        kill_processes_under(jobs)
    (tmp_path / "schemathesis.log").write_text(run.stdout + run.stderr)  # the whole report, for reading
    assert run.returncode == 0, run.stdout[-30000:] + run.stderr[-5000:]
    # It really ran: thousands of cases over every operation (one disabled: logout).
    counts = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert counts is not None and int(counts[1]) == int(counts[2]) > 1000, run.stdout[-3000:]
    assert re.search(r"Tested: (2[5-9]|[3-9]\d)\b", run.stdout), run.stdout[-3000:]
