"""Real server processes for the live-event tests, sharing the test database."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.credentials import local_webhook_secret
from tests.processes import django_env
from tests.providers.cleanup import kill_processes_under
from tests.server.live import free_port, running
from tests.webhooks.signing import signed_headers


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


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("jobs")
    yield path
    kill_processes_under(path)


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server") / "server.log"


@pytest.fixture(scope="module")
def server(django_db_setup: None, jobs_dir: Path, server_log: Path) -> Iterator[str]:
    """One server process (in-memory channel layer) for the module."""
    port = free_port()
    env = server_env(jobs_dir)  # only --port: the URL local jobs report to must follow it
    env.pop("PORT", None)
    with running([sys.executable, "manage.py", "serve", "--port", str(port)], env, port, server_log) as base:
        yield base
    assert_no_unhandled_errors(server_log)


def assert_no_unhandled_errors(log: Path) -> None:
    """Streams end by disconnects and cancellations: none of that may surface as a 500 or traceback."""
    text = log.read_text()
    for marker in ("Exception in ASGI application", "Exception inside application", "Traceback"):  # uvicorn, daphne
        assert marker not in text, text[-5000:]
    assert "could not publish a live event" not in text, text[-5000:]


def deliver(base: str, provider: str, payload: dict[str, Any], **signing: Any) -> httpx.Response:
    """POST a webhook signed with the local provider's secret (same server key as the server's)."""
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **signed_headers(local_webhook_secret(), body, **signing)}
    return httpx.post(f"{base}/api/webhooks/{provider}", content=body, headers=headers, timeout=10)
