"""Concurrent cancels of one job: one wins and is audited, the others learn it was already
being cancelled (issue 13, defect 8: several 200s and one audit entry per 200)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEntry
from providers.jobs import CANCEL_CLAIM_SECONDS
from providers.models import Job, JobStatus
from tests.providers.helpers import ENDLESS, race, submit, wait_for_status

pytestmark = pytest.mark.django_db(transaction=True)

CANCEL = """
    from rest_framework.exceptions import APIException
    from providers.jobs import job_cancel
    from providers.models import Job
    try:
        job_cancel(job=Job.objects.get(pk={job_id!r}))
        print("cancelled")
    except APIException as exc:
        print("conflict", exc.detail)
"""


@pytest.mark.slow
def test_of_four_processes_cancelling_one_job_one_wins(alice_client: APIClient, tmp_path: Path) -> None:
    job = wait_for_status(
        submit(alice_client, {"provider": "local", "config": ENDLESS}).json()["job_id"], JobStatus.RUNNING
    )
    outputs = sorted(out.strip() for out in race(CANCEL.format(job_id=job.pk), 4, tmp_path))
    assert outputs[0] == "cancelled", outputs
    assert all(out.startswith("conflict") for out in outputs[1:]), outputs
    assert all("already" in out for out in outputs[1:]), outputs
    assert AuditEntry.objects.filter(event_type="job.cancelled", target_id=job.pk).count() == 1
    assert wait_for_status(job.pk, JobStatus.CANCELLED).status == JobStatus.CANCELLED


def test_a_second_cancel_over_the_api_is_a_409_and_not_audited_again(alice_client: APIClient) -> None:
    job = wait_for_status(
        submit(alice_client, {"provider": "local", "config": ENDLESS}).json()["job_id"], JobStatus.RUNNING
    )
    assert alice_client.post(f"/api/cloud/jobs/{job.pk}/cancel").status_code == 200
    again = alice_client.post(f"/api/cloud/jobs/{job.pk}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    assert AuditEntry.objects.filter(event_type="job.cancelled", target_id=job.pk).count() == 1


def test_a_cancel_whose_canceller_died_can_be_taken_over(alice_client: APIClient) -> None:
    from datetime import timedelta

    from django.utils import timezone

    job = wait_for_status(
        submit(alice_client, {"provider": "local", "config": ENDLESS}).json()["job_id"], JobStatus.RUNNING
    )
    stale = timezone.now() - timedelta(seconds=CANCEL_CLAIM_SECONDS + 1)
    Job.objects.filter(pk=job.pk).update(cancel_requested_at=stale)  # a canceller that died mid-way
    assert alice_client.post(f"/api/cloud/jobs/{job.pk}/cancel").status_code == 200
