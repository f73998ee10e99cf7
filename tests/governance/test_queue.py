"""The fair queue: queued jobs start when their owner has a slot, admins' first, then leads',
then researchers', oldest first within a role; one pass at a time (the lease), each job once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEntry
from governance.models import Quota
from governance.queue import LEASE_NAME, queue_dispatch, queue_order
from providers.jobs import job_transition
from providers.models import Job, JobStatus, LiveEvent
from providers.sync import jobs_sync, lease_acquire
from tests.providers.helpers import ENDLESS, QUICK, submit, wait_for_status

pytestmark = pytest.mark.django_db


def waiting(owner: AbstractUser, minutes_ago: float, provider: str = "replicate") -> Job:
    """A job waiting in the queue. Replicate is unconfigured here: a started job fails at its
    provider at once, which is enough to see that (and when) it was started. A local job runs
    until cancelled (the local jobs directory's cleanup stops it after the test)."""
    created = timezone.now() - timedelta(minutes=minutes_ago)
    config = ENDLESS if provider == "local" else {}
    return Job.objects.create(
        owner=owner, provider=provider, status=JobStatus.QUEUED, created_at=created, config=config
    )


def running(owner: AbstractUser) -> Job:
    return Job.objects.create(owner=owner, provider="local", status=JobStatus.RUNNING, external_id="x")


def started(job: Job) -> bool:
    job.refresh_from_db()
    return job.start_claimed_at is not None and job.status != JobStatus.QUEUED


def test_waiting_jobs_go_admin_then_lead_then_researcher_oldest_first(
    alice: AbstractUser, bob: AbstractUser, lena: AbstractUser, adam: AbstractUser, olivia: AbstractUser
) -> None:
    alice_old, bob_job, alice_new = waiting(alice, 50), waiting(bob, 40), waiting(alice, 5)
    lena_job, adam_job, olivia_job = waiting(lena, 10), waiting(adam, 1), waiting(olivia, 2)
    order = [job.pk for job in queue_order(timezone.now())]
    assert order == [olivia_job.pk, adam_job.pk, lena_job.pk, alice_old.pk, bob_job.pk, alice_new.pk]
    result = queue_dispatch()
    assert result.ran and result.dispatched == order


def test_a_job_waits_while_its_owner_has_no_slot_and_starts_when_one_frees(
    alice: AbstractUser, bob: AbstractUser
) -> None:
    Quota.objects.create(scope="global", quota_type="concurrent_jobs", limit=1, action="queue")
    busy = running(alice)
    first, second, bobs = waiting(alice, 3, "local"), waiting(alice, 2, "local"), waiting(bob, 1)
    assert queue_dispatch().dispatched == [bobs.pk]  # bob has a free slot, alice none
    assert not started(first) and not started(second)
    job_transition(job=busy, to=JobStatus.COMPLETED)
    assert queue_dispatch().dispatched == [first.pk]  # one slot: the oldest
    assert wait_for_status(first.pk, JobStatus.RUNNING).external_id and not started(second)
    entry = AuditEntry.objects.get(event_type="job.dispatched", target_id=first.pk)
    assert entry.action == "dispatch" and entry.details["waited_seconds"] >= 120
    assert LiveEvent.objects.filter(job_id=first.pk, kind="job.dispatched").exists()


def test_a_block_quota_also_keeps_queued_jobs_waiting_but_a_warn_quota_does_not(alice: AbstractUser) -> None:
    running(alice)
    job = waiting(alice, 1)
    quota = Quota.objects.create(scope="user", target="alice", quota_type="concurrent_jobs", limit=1, action="block")
    assert queue_dispatch().dispatched == []
    quota.action = "warn"
    quota.save()
    assert queue_dispatch().dispatched == [job.pk]


def test_the_sync_pass_dispatches_the_queue(alice: AbstractUser) -> None:
    job = waiting(alice, 1)
    result = jobs_sync()
    assert result.changed["dispatched"] == 1 and started(job)


def test_a_pass_does_nothing_while_another_process_holds_the_lease(alice: AbstractUser) -> None:
    job = waiting(alice, 1)
    assert lease_acquire(LEASE_NAME, "another-host:1")
    result = queue_dispatch(holder="this-host:2")
    assert (result.ran, result.dispatched) == (False, [])
    assert not started(job)


def test_a_cancelled_or_claimed_job_is_not_dispatched(alice: AbstractUser) -> None:
    cancelled = waiting(alice, 3)
    Job.objects.filter(pk=cancelled.pk).update(status=JobStatus.CANCELLED)
    claimed = waiting(alice, 2)
    Job.objects.filter(pk=claimed.pk).update(start_claimed_at=timezone.now())
    assert queue_dispatch().dispatched == []


@override_settings(SIMPLETUNER_SUBMIT_CLAIM_SECONDS=60)
def test_a_claim_its_dispatcher_abandoned_is_dispatched_again(alice: AbstractUser) -> None:
    job = waiting(alice, 10)
    Job.objects.filter(pk=job.pk).update(start_claimed_at=timezone.now() - timedelta(seconds=61))
    assert queue_dispatch().dispatched == [job.pk]


def test_a_queued_submission_runs_at_its_provider_once_a_slot_frees(
    alice: AbstractUser, alice_client: APIClient
) -> None:
    Quota.objects.create(scope="user", target="alice", quota_type="concurrent_jobs", limit=1, action="queue")
    busy = running(alice)
    job_id = submit(alice_client, {"provider": "local", "config": QUICK}).json()["job_id"]
    assert queue_dispatch().dispatched == []
    job_transition(job=busy, to=JobStatus.CANCELLED)
    assert queue_dispatch().dispatched == [job_id]
    job = wait_for_status(job_id, JobStatus.RUNNING, JobStatus.COMPLETED)
    assert job.external_id and job.runner
    moves: list[Any] = [e.details for e in AuditEntry.objects.filter(event_type="job.status_changed", target_id=job_id)]
    assert moves[0]["from"] == "queued"
