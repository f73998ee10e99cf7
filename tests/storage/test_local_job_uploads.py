"""End to end: a local job on a real server ends with its checkpoint in its bucket."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import boto3
import httpx
import pytest

from tests.processes import ROOT
from tests.providers.cleanup import kill_processes_under
from tests.server.live import free_port, running


def _manage(env: dict[str, str], *args: str) -> str:
    import subprocess

    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout


@pytest.mark.slow
def test_a_local_job_uploads_its_checkpoint_to_its_bucket(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update({"SIMPLETUNER_HOME": str(home), "PORT": str(port), "SIMPLETUNER_SYNC_INTERVAL": "1"})
    _manage(env, "migrate", "--noinput")
    admin = {"DJANGO_SUPERUSER_USERNAME": "admin", "DJANGO_SUPERUSER_EMAIL": "a@example.com"}
    _manage({**env, **admin, "DJANGO_SUPERUSER_PASSWORD": "a long passphrase"}, "createsuperuser", "--noinput")
    api_key = _manage(env, "create_api_key", "--user", "admin", "--name", "ops").strip().splitlines()[-1]
    try:
        with running([sys.executable, "manage.py", "serve"], env, port, tmp_path / "server.log") as base:
            client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
            # 9 MB: above boto3's 8 MB threshold, so the trainer's upload_file goes multipart.
            config = {"max_train_steps": 2, "step_seconds": 0, "checkpoint_size_mb": 9}
            submitted = client.post("/api/cloud/jobs/submit", json={"provider": "local", "config": config})
            assert submitted.status_code == 201, submitted.text
            job_id = submitted.json()["job_id"]
            deadline = time.monotonic() + 90
            while True:
                job = client.get(f"/api/cloud/jobs/{job_id}").json()["job"]
                if job["status"] in ("completed", "failed") or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert job["status"] == "completed", client.get(f"/api/cloud/jobs/{job_id}/logs").text
            stored = list((home / "outputs" / job_id).rglob("*"))
            files = [p for p in stored if p.is_file()]
            assert len(files) == 1 and files[0].parent.name == "checkpoint-2", stored
            size = files[0].stat().st_size
            assert size >= 9_000_000
            progress = job["upload_progress"]
            assert progress["files"] == 1 and progress["bytes"] == size and progress["last_upload_at"]
            source = next((home / "jobs" / job_id / "output").rglob("*.*"))
            assert hashlib.sha256(source.read_bytes()).digest() == hashlib.sha256(files[0].read_bytes()).digest()
            audit = client.get("/api/audit", params={"event_type": "storage.upload", "target_id": job_id}).json()
            assert audit["total"] == 1
            # The operator downloads it with the staff API key as S3 credentials.
            s3 = boto3.client(
                "s3",
                endpoint_url=base + "/api/cloud/storage",
                aws_access_key_id=api_key[:11],
                aws_secret_access_key=api_key,
                region_name="us-east-1",
            )
            key = str(files[0].relative_to(home / "outputs" / job_id))
            listed = s3.list_objects_v2(Bucket=job_id)
            assert [o["Key"] for o in listed["Contents"]] == [key]
            assert s3.head_object(Bucket=job_id, Key=key)["ContentLength"] == size
    finally:
        kill_processes_under(home / "jobs")
