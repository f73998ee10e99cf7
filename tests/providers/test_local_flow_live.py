"""The README's first-job walkthrough against a real server process (embedded default)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import ROOT
from tests.providers.cleanup import kill_processes_under, processes_under
from tests.server.live import free_port, running


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    yield home
    kill_processes_under(home / "jobs")


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


def wait_for(client: httpx.Client, job_id: str, status: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/cloud/jobs/{job_id}").json()["job"]
        if job["status"] == status or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def wait_for_run_time(client: httpx.Client, job_id: str, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while True:
        run_seconds = client.get(f"/api/cloud/jobs/{job_id}").json()["job"]["run_seconds"]
        if run_seconds is not None or time.monotonic() > deadline:
            assert run_seconds is not None, f"job {job_id} has no run time after {timeout}s"
            return run_seconds
        time.sleep(0.2)


@pytest.mark.slow
def test_submit_watch_read_logs_and_cancel_on_a_real_server(home: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update({"SIMPLETUNER_HOME": str(home), "PORT": str(port), "SIMPLETUNER_SYNC_INTERVAL": "1"})
    manage(env, "migrate", "--noinput")
    manage(
        {
            **env,
            "DJANGO_SUPERUSER_USERNAME": "admin",
            "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
            "DJANGO_SUPERUSER_PASSWORD": "a long passphrase",
        },
        "createsuperuser",
        "--noinput",
    )
    api_key = manage(env, "create_api_key", "--user", "admin", "--name", "laptop").strip().splitlines()[-1]
    with running([sys.executable, "manage.py", "serve"], env, port, tmp_path / "server.log") as base:
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
        # Submit a job and watch it finish.
        submitted = client.post(
            "/api/cloud/jobs/submit",
            json={"provider": "local", "config": {"max_train_steps": 5, "step_seconds": 0.1}, "name": "first"},
        )
        assert submitted.status_code == 201, submitted.text
        job = wait_for(client, submitted.json()["job_id"], "completed")
        assert job["status"] == "completed", job
        assert job["progress"]["current"] == 5
        # Read its logs.
        logs = client.get(f"/api/cloud/jobs/{job['id']}/logs").json()["logs"]
        assert "step 5/5" in logs and "training complete" in logs
        # Cancel another one while it runs.
        long_job = client.post("/api/cloud/jobs", json={"provider": "local", "config": {"max_train_steps": 10000}})
        job_id = long_job.json()["job_id"]
        assert wait_for(client, job_id, "running")["status"] == "running"
        cancelled = client.post(f"/api/cloud/jobs/{job_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        listing = client.get("/api/cloud/jobs?status=completed,cancelled").json()
        assert listing["total"] == 2
        deadline = time.monotonic() + 20
        while processes_under(home / "jobs") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_under(home / "jobs") == []
        # Both record the wall time of their process (the first reported completed by its own
        # webhook before it exited, the second cancelled), so the duration metric exists.
        for ended in (job["id"], job_id):
            assert wait_for_run_time(client, ended) > 0
        metrics_on = client.put("/api/cloud/metrics/config", json={"prometheus_enabled": True})
        assert metrics_on.status_code == 200, metrics_on.text
        scrape = client.get("/api/cloud/metrics/prometheus").text
        assert "simpletuner_job_duration_seconds_avg " in scrape
    server_log = (tmp_path / "server.log").read_text()
    assert '"message": "background job sync started"' in server_log
