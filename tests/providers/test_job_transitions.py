from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser

from audit.models import AuditEntry
from providers.base import RemoteState
from providers.jobs import job_apply_remote, job_transition
from providers.models import Job, JobStatus
from tests.providers.helpers import race

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(alice: AbstractUser) -> Job:
    return Job.objects.create(owner=alice, provider="local", hardware="local")


def test_a_forward_move_updates_the_job_and_is_audited(job: Job) -> None:
    assert job_transition(job=job, to=JobStatus.RUNNING, reason="started", source="test") is True
    assert job.status == JobStatus.RUNNING and job.started_at is not None and job.completed_at is None
    entry = AuditEntry.objects.get(event_type="job.status_changed")
    assert (entry.target_type, entry.target_id, entry.action) == ("job", job.pk, "running")
    assert entry.details == {"from": "pending", "to": "running", "reason": "started", "source": "test"}


def test_steps_may_be_skipped_forward(job: Job) -> None:
    assert job_transition(job=job, to=JobStatus.COMPLETED) is True
    assert job.completed_at is not None
    assert job.started_at is None


def test_a_status_never_moves_backwards(job: Job) -> None:
    job_transition(job=job, to=JobStatus.RUNNING)
    assert job_transition(job=job, to=JobStatus.QUEUED) is False
    assert job_transition(job=job, to=JobStatus.RUNNING) is False
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
    assert AuditEntry.objects.filter(event_type="job.status_changed").count() == 1


@pytest.mark.parametrize("terminal", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_terminal_statuses_never_change(job: Job, terminal: str) -> None:
    job_transition(job=job, to=terminal)
    finished = Job.objects.get(pk=job.pk).completed_at
    for other in {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.RUNNING} - {terminal}:
        assert job_transition(job=job, to=other, fields={"error": "late"}) is False
    stored = Job.objects.get(pk=job.pk)
    assert (stored.status, stored.completed_at, stored.error) == (terminal, finished, "")


def test_a_late_event_never_undoes_a_terminal_status(job: Job) -> None:
    job_transition(job=job, to=JobStatus.CANCELLED)
    assert (
        job_apply_remote(job=job, remote=RemoteState(status=JobStatus.RUNNING, logs="late logs"), source="t") is False
    )
    stored = Job.objects.get(pk=job.pk)
    assert stored.status == JobStatus.CANCELLED and stored.logs == ""


def test_the_same_status_again_still_records_activity(job: Job) -> None:
    job_transition(job=job, to=JobStatus.RUNNING)
    remote = RemoteState(status=JobStatus.RUNNING, logs="step 3/10", progress={"current": 3, "total": 10})
    assert job_apply_remote(job=job, remote=remote, source="t") is False
    stored = Job.objects.get(pk=job.pk)
    assert (stored.logs, stored.progress) == ("step 3/10", {"current": 3, "total": 10})
    assert stored.last_synced_at is not None


def test_fields_are_written_in_the_same_update(job: Job) -> None:
    job_transition(job=job, to=JobStatus.FAILED, fields={"error": "out of memory"})
    assert Job.objects.get(pk=job.pk).error == "out of memory"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_racing_updates_produce_exactly_one_transition(alice: AbstractUser, tmp_path: Path) -> None:
    """Two processes try, at the same moment, to finish the same running job differently:
    one wins, once, and its fields are the ones stored."""
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.RUNNING)
    code = f"""
        import os
        from providers.jobs import job_transition
        from providers.models import Job
        to = "completed" if os.getpid() % 2 else "failed"
        job = Job.objects.get(pk={job.pk!r})
        print(job_transition(job=job, to=to, fields={{"error": to}}))
    """
    results = [out.strip() for out in race(code, 2, tmp_path)]
    assert sorted(results) == ["False", "True"]
    stored = Job.objects.get(pk=job.pk)
    assert stored.status in ("completed", "failed")
    assert stored.error == stored.status  # the winner's fields, never a mix
    changes = AuditEntry.objects.filter(event_type="job.status_changed", target_id=job.pk)
    assert [e.details["to"] for e in changes] == [stored.status]
