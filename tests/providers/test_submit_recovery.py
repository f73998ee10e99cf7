"""A submission is recorded with its audit entry and start claim in one transaction, and one
whose starter died is started by its retry or by the sync (issue 13, defect 3: a submit that
failed after its row was saved left a job that never started, with no job.submitted entry,
and the client's retry got `200 idempotent_hit` for that dead job)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from audit.models import AuditEntry
from providers.models import Job, JobStatus
from providers.sync import jobs_sync
from tests.audit.tamper import edit_head
from tests.processes import spawn_django
from tests.providers.helpers import QUICK, submit, wait_for_status

pytestmark = pytest.mark.django_db(transaction=True)

CRASH_AT_PROVIDER = """
    import os, signal
    from django.contrib.auth import get_user_model
    from providers import local
    from providers.submit import job_submit

    def killed(self, **kwargs):  # the process dies as it reaches the provider (kill -9)
        os.kill(os.getpid(), signal.SIGKILL)

    local.LocalProvider.submit = killed
    owner = get_user_model().objects.get(pk={owner})
    job_submit(owner=owner, provider="local", config={config}, idempotency_key="crash")
"""


def crash_while_submitting(alice: AbstractUser) -> Job:
    process = spawn_django(CRASH_AT_PROVIDER.format(owner=alice.pk, config=QUICK))
    process.communicate(timeout=60)
    assert process.returncode == -9
    job = Job.objects.get(owner=alice, idempotency_key="crash")
    assert (job.status, job.external_id) == (JobStatus.PENDING, "")
    # Recorded with its audit entry: the row and the entry are one transaction.
    assert AuditEntry.objects.filter(event_type="job.submitted", target_id=job.pk).exists()
    return job


@pytest.mark.slow
def test_a_retry_after_the_claim_runs_out_starts_the_abandoned_job(
    alice: AbstractUser, alice_client: APIClient, settings: SettingsWrapper
) -> None:
    settings.SIMPLETUNER_SUBMIT_CLAIM_SECONDS = 0.5
    job = crash_while_submitting(alice)
    time.sleep(0.6)
    retry = submit(alice_client, {"provider": "local", "config": QUICK}, **{"Idempotency-Key": "crash"})
    assert retry.status_code == 200 and retry.json()["idempotent_hit"] is True
    assert retry.json()["job_id"] == job.pk
    assert wait_for_status(job.pk, JobStatus.COMPLETED).external_id != ""
    assert Job.objects.filter(owner=alice).count() == 1


@pytest.mark.slow
def test_a_retry_within_the_claim_finds_the_job_and_the_sync_starts_it(
    alice: AbstractUser, alice_client: APIClient, settings: SettingsWrapper
) -> None:
    settings.SIMPLETUNER_SUBMIT_CLAIM_SECONDS = 1.0
    job = crash_while_submitting(alice)
    retry = submit(alice_client, {"provider": "local", "config": QUICK}, **{"Idempotency-Key": "crash"})
    assert retry.status_code == 200 and retry.json()["status"] == JobStatus.PENDING  # claimed by the dead one
    time.sleep(1.1)
    assert jobs_sync().changed["started"] == 1
    assert wait_for_status(job.pk, JobStatus.COMPLETED)
    assert jobs_sync().changed["started"] == 0  # started once


def test_a_submission_the_audit_trail_refuses_stores_no_job(alice_client: APIClient) -> None:
    # (alice's API key was audited: there is a head to tamper with)
    edit_head(mac="0" * 64)  # the chain no longer verifies: audited actions are refused
    response = submit(alice_client, {"provider": "local", "config": QUICK}, **{"Idempotency-Key": "k"})
    assert response.status_code == 503
    assert not Job.objects.exists()  # the row went with its refused audit entry


@pytest.mark.slow
def test_two_retries_of_an_abandoned_job_start_it_once(
    alice: AbstractUser, settings: SettingsWrapper, tmp_path: Path
) -> None:
    from tests.providers.helpers import race

    settings.SIMPLETUNER_SUBMIT_CLAIM_SECONDS = 0.5
    job = crash_while_submitting(alice)
    time.sleep(0.6)
    code = f"""
        from django.conf import settings
        settings.SIMPLETUNER_SUBMIT_CLAIM_SECONDS = 0.5
        from django.contrib.auth import get_user_model
        from providers.submit import job_submit
        owner = get_user_model().objects.get(pk={alice.pk})
        result = job_submit(owner=owner, provider="local", config={QUICK!r}, idempotency_key="crash")
        print(result.job.pk, len(result.warnings))
    """
    outputs = race(code, 3, tmp_path)
    assert {line.split()[0] for line in outputs} == {job.pk}
    # The starting process has exited (its watcher with it): the sync records the end.
    deadline = time.monotonic() + 30
    while Job.objects.get(pk=job.pk).status != JobStatus.COMPLETED and time.monotonic() < deadline:
        jobs_sync()
        time.sleep(0.1)
    done = Job.objects.get(pk=job.pk)
    assert done.status == JobStatus.COMPLETED
    # One start: one runner, one `running` transition.
    starts = AuditEntry.objects.filter(event_type="job.status_changed", target_id=job.pk, action="running")
    assert starts.count() == 1, [json.dumps(e.details) for e in starts]
    assert done.runner["pid"]
