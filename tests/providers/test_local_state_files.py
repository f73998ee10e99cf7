"""The files a local job's process group can write (progress.json, exit.json) are untrusted
input: whatever they hold, the job is recorded and no poll fails."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from providers.local import LocalProvider
from providers.models import JobStatus
from tests.providers.helpers import python_command, submit, wait_for_status

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE_PROGRESS = python_command(
    "import pathlib; pathlib.Path('progress.json').write_text("
    '\'{"current": NaN, "total": 1e999, "loss": 0.5, "x": "\\\\u0000"}\')'
)


def test_a_progress_file_no_database_stores_is_ignored_and_the_job_is_recorded(staff_client: APIClient) -> None:
    job_id = submit(staff_client, {"provider": "local", "config": {"command": HOSTILE_PROGRESS}}).json()["job_id"]
    job = wait_for_status(job_id, JobStatus.COMPLETED)
    assert job.progress == {}
    assert staff_client.get(f"/api/cloud/jobs/{job_id}").status_code == 200


def test_a_readable_progress_file_is_normalised_like_trainer_webhooks(staff_client: APIClient) -> None:
    command = python_command(
        'import pathlib; pathlib.Path(\'progress.json\').write_text(\'{"step": 3, "total_steps": 4, "junk": [1]}\')'
    )
    job = wait_for_status(
        submit(staff_client, {"provider": "local", "config": {"command": command}}).json()["job_id"],
        JobStatus.COMPLETED,
    )
    assert job.progress == {"current": 3, "total": 4, "percent": 75.0}


@pytest.mark.parametrize(
    ("exit_status", "reason"),
    [
        ({"returncode": "x", "duration": "long"}, "unreadable exit status"),
        ({"returncode": -999, "duration": float("inf")}, "killed by signal 999"),
        ({"returncode": True}, "unreadable exit status"),
        ({"returncode": 3, "duration": 10**12}, "exited with status 3"),
    ],
)
def test_an_exit_status_file_of_any_shape_ends_the_job_as_failed(exit_status: dict, reason: str) -> None:
    state = LocalProvider()._finished(exit_status, "", {}, cancel_requested=False)
    assert state.status == JobStatus.FAILED and reason in state.error
    assert state.run_seconds is None
