"""Real server processes for the live-event tests, sharing the test database."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings

from tests.processes import django_env
from tests.server.live import free_port, running_process
from tests.webhooks.signing import local_secret_for, signed_headers


def server_env(jobs_dir: Path, **extra: str) -> dict[str, str]:
    env = django_env(
        SIMPLETUNER_BACKGROUND_SYNC="false",
        SIMPLETUNER_EVENTS_HEARTBEAT="0.5",
        SIMPLETUNER_EVENTS_REAUTH_SECONDS="1",
        SIMPLETUNER_LOCAL_JOBS_DIR=str(jobs_dir),
        **extra,
    )
    if "REDIS_URL" not in extra:
        env.pop("REDIS_URL", None)
    return env


@pytest.fixture(autouse=True)
def _no_outputs_left_behind() -> Iterator[None]:
    yield
    # Objects the tests' jobs uploaded: the machine is shared, and the storage tests list every bucket.
    shutil.rmtree(settings.OUTPUTS_DIR, ignore_errors=True)


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server") / "server.log"


@pytest.fixture(scope="module")
def served(django_db_setup: None, jobs_dir: Path, server_log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """One server process (in-memory channel layer) for the module: its URL and process."""
    port = free_port()
    env = server_env(jobs_dir)  # only --port: the URL local jobs report to must follow it
    env.pop("PORT", None)
    argv = [sys.executable, "manage.py", "serve", "--port", str(port)]
    with running_process(argv, env, port, server_log) as (base, proc):
        yield base, proc
    assert_no_unhandled_errors(server_log)


@pytest.fixture(scope="module")
def server(served: tuple[str, subprocess.Popen[bytes]]) -> str:
    return served[0]


def assert_no_unhandled_errors(log: Path) -> None:
    """Streams end by disconnects and cancellations: none of that may surface as a 500 or a
    traceback (running_process checks that), nor lose a live event."""
    text = log.read_text()
    assert "could not publish a live event" not in text, text[-5000:]


def deliver(base: str, provider: str, payload: dict[str, Any], **signing: Any) -> httpx.Response:
    """POST a webhook signed with the local provider's secret (same server key as the server's)."""
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **signed_headers(local_secret_for(body), body, **signing)}
    return httpx.post(f"{base}/api/webhooks/{provider}", content=body, headers=headers, timeout=10)
