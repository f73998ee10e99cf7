"""Each local job signs its webhooks with a secret of its own, and a job reported ended is not
left running (issue 12, finding 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from audit.models import AuditEntry
from providers.credentials import local_webhook_secret
from providers.local import runner_alive
from providers.models import Job, JobStatus
from tests.providers.helpers import ENDLESS, python_command, submit, wait_for_status
from tests.providers.test_local_provider import wait_until
from tests.webhooks.signing import signed_headers

pytestmark = pytest.mark.django_db(transaction=True)

READ_SECRET = python_command(
    "import os, pathlib, time; pathlib.Path('secret').write_text(os.environ['SIMPLETUNER_WEBHOOK_SECRET']); time.sleep(600)"
)


def report(client: APIClient, job_id: str, status: str, *, secret: str) -> object:
    body = json.dumps({"type": "training.status", "job_id": job_id, "data": {"status": status}}).encode()
    return client.generic(
        "POST",
        "/api/webhooks/local",
        body,
        content_type="application/json",
        headers=signed_headers(secret, body),
        REMOTE_ADDR="203.0.113.9",
    )


def test_every_local_job_gets_a_secret_of_its_own(staff_client: APIClient) -> None:
    first = wait_for_status(
        submit(staff_client, {"provider": "local", "config": {"command": READ_SECRET}}).json()["job_id"],
        JobStatus.RUNNING,
    )
    second = wait_for_status(
        submit(staff_client, {"provider": "local", "config": {"command": READ_SECRET}}).json()["job_id"],
        JobStatus.RUNNING,
    )
    secrets = {}
    for job in (first, second):
        path = Path(job.runner["dir"]) / "secret"
        wait_until(path.exists)
        secrets[job.pk] = path.read_text()
    assert secrets[first.pk] == local_webhook_secret(first.pk)
    assert secrets[second.pk] == local_webhook_secret(second.pk)
    assert secrets[first.pk] != secrets[second.pk]


def test_a_job_cannot_report_for_another_users_job(
    alice_client: APIClient, bob_client: APIClient, anon: APIClient
) -> None:
    # The attack: bob's job reads its own secret and signs `completed` for alice's job.
    alice_job = wait_for_status(
        submit(alice_client, {"provider": "local", "config": ENDLESS}).json()["job_id"], JobStatus.RUNNING
    )
    bob_job = wait_for_status(
        submit(bob_client, {"provider": "local", "config": ENDLESS}).json()["job_id"], JobStatus.RUNNING
    )
    response = report(anon, alice_job.pk, "completed", secret=local_webhook_secret(bob_job.pk))
    assert response.status_code == 401
    assert "Invalid webhook signature" in response.json()["detail"]
    alice_job.refresh_from_db()
    assert alice_job.status == JobStatus.RUNNING
    rejected = AuditEntry.objects.get(event_type="webhook_rejected")
    assert rejected.details["reason"] == "signature" and rejected.target_id == "local"
    # Alice can still cancel her job: it was never marked completed behind her back.
    assert alice_client.post(f"/api/cloud/jobs/{alice_job.pk}/cancel").status_code == 200


def test_a_job_reported_ended_while_still_running_is_stopped_after_the_exit_grace(
    alice_client: APIClient, anon: APIClient, settings: SettingsWrapper
) -> None:
    settings.SIMPLETUNER_LOCAL_EXIT_GRACE = 0.5
    settings.SIMPLETUNER_LOCAL_CANCEL_GRACE = 1.0
    job = wait_for_status(
        submit(alice_client, {"provider": "local", "config": ENDLESS}).json()["job_id"], JobStatus.RUNNING
    )
    assert report(anon, job.pk, "completed", secret=local_webhook_secret(job.pk)).status_code == 200
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    wait_until(lambda: not runner_alive(job.runner), timeout=15)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED  # the stop does not rewrite what was reported


def test_a_job_that_exits_by_itself_after_reporting_is_left_alone(
    alice_client: APIClient, anon: APIClient, settings: SettingsWrapper
) -> None:
    settings.SIMPLETUNER_LOCAL_EXIT_GRACE = 0.5
    quick = {"provider": "local", "config": {"max_train_steps": 1, "step_seconds": 0, "checkpoint_size_mb": 0}}
    job = wait_for_status(submit(alice_client, quick).json()["job_id"], JobStatus.COMPLETED)
    assert not runner_alive(job.runner)
    assert Job.objects.get(pk=job.pk).error == ""
