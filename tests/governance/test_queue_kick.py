"""A job's end starts the next queued job at once, in the server process where it ended,
not at the next sync pass (an hour away here)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import AbstractUser

from governance.models import Quota
from providers.models import Job, JobStatus
from tests.conftest import client_for
from tests.metrics.live import servers
from tests.providers.helpers import ENDLESS, wait_for_status

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_cancel_in_a_server_process_dispatches_the_waiting_job(
    tmp_path: Path, alice: AbstractUser, local_jobs_dir: Path
) -> None:
    Quota.objects.create(scope="user", target="alice", quota_type="concurrent_jobs", limit=1, action="queue")
    key = client_for(alice).raw_key  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {key}"}
    env = {
        "SIMPLETUNER_BACKGROUND_SYNC": "true",
        "SIMPLETUNER_SYNC_INTERVAL": "3600",
        "SIMPLETUNER_LOCAL_JOBS_DIR": str(local_jobs_dir),
    }
    with servers(1, tmp_path, **env) as (base,):

        def post(path: str, body: dict[str, object] | None = None) -> httpx.Response:
            return httpx.post(f"{base}{path}", json=body, headers=headers, timeout=30)

        first = post("/api/cloud/jobs/submit", {"provider": "local", "config": ENDLESS})
        second = post("/api/cloud/jobs/submit", {"provider": "local", "config": ENDLESS})
        assert (first.json()["status"], second.json()["status"]) == ("running", "queued"), second.text
        second_id = second.json()["job_id"]
        assert Job.objects.get(pk=second_id).external_id == ""
        assert post(f"/api/cloud/jobs/{first.json()['job_id']}/cancel").status_code == 200
        # Only the kick can start it: the server's sync pass ran at start and is an hour away.
        assert wait_for_status(second_id, JobStatus.RUNNING).external_id
        assert post(f"/api/cloud/jobs/{second_id}/cancel").status_code == 200
