"""A job's live event is recorded in the transaction of the change it reports (issue 13,
defect 9: a kill -9 between the status commit and recording the event lost the event)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import transaction

from providers.events import events_since
from providers.jobs import job_transition
from providers.models import Job, JobStatus, LiveEvent

pytestmark = pytest.mark.django_db


def test_the_event_row_is_written_with_the_change_before_anything_is_sent(
    alice: AbstractUser, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)
    with django_capture_on_commit_callbacks(execute=False) as sends:
        assert job_transition(job=job, to=JobStatus.RUNNING)
        # The process could die here, after the commit and before any send: the event is
        # already recorded, so every stream catches up on it.
        row = LiveEvent.objects.get(job_id=job.pk)
    assert (row.kind, row.data["status"], row.data["previous_status"]) == ("job.status", "running", "queued")
    assert len(sends) >= 1  # the send waits for the commit
    backlog, _ = events_since(last_id=0, user_id=alice.pk, staff=False)
    assert [e.id for e in backlog] == [row.pk]


def test_a_change_that_is_rolled_back_leaves_no_event(alice: AbstractUser) -> None:
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)
    with pytest.raises(RuntimeError), transaction.atomic():
        job_transition(job=job, to=JobStatus.RUNNING)
        raise RuntimeError("the caller's transaction fails after the transition")
    assert not LiveEvent.objects.filter(job_id=job.pk).exists()
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
