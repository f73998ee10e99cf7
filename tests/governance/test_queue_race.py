"""Exactly-once dispatch across processes: forked Python processes, each with its own
database connection, race the dispatch pass and the row claim on the same queued jobs. The
database decides (a lease row, then `UPDATE ... WHERE status = 'queued' ...` by row count)."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connection
from django.utils import timezone

from audit.models import AuditEntry
from governance.queue import queue_claim, queue_dispatch
from providers.models import Job, JobStatus

pytestmark = pytest.mark.django_db(transaction=True)

RACERS = 4
JOBS = 6


def race(work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` in RACERS forked processes released together; their results."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(RACERS), context.Queue()

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results.put(work(i))
        except Exception as exc:  # reported by the caller's assertions
            results.put(repr(exc))
        finally:
            connection.close()

    connection.close()  # each child opens its own connection
    processes = [context.Process(target=run, args=(i,)) for i in range(RACERS)]
    for process in processes:
        process.start()
    found = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return found


def queued_jobs(owner: AbstractUser) -> list[Job]:
    # Replicate is unconfigured here: a dispatched job fails at its provider at once, and
    # each start shows in the trail as one move out of `queued`.
    return [Job.objects.create(owner=owner, provider="replicate", status=JobStatus.QUEUED) for _ in range(JOBS)]


def skip_on_sqlite() -> None:
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer at a time: the racers would queue, not race")


def test_racing_dispatch_passes_start_each_job_once(alice: AbstractUser) -> None:
    skip_on_sqlite()
    jobs = queued_jobs(alice)
    outcomes = race(lambda i: queue_dispatch(holder=f"racer-{i}").dispatched)
    assert all(isinstance(o, list) for o in outcomes), outcomes
    dispatched = Counter(job_id for outcome in outcomes for job_id in outcome)
    assert dispatched == Counter({job.pk: 1 for job in jobs})
    assert AuditEntry.objects.filter(event_type="job.dispatched").count() == JOBS
    for job in jobs:
        moves = AuditEntry.objects.filter(event_type="job.status_changed", target_id=job.pk)
        assert [m.details["from"] for m in moves] == ["queued"]


def test_racing_claims_of_one_job_let_exactly_one_through(alice: AbstractUser) -> None:
    skip_on_sqlite()
    job = queued_jobs(alice)[0]

    def claim(i: int) -> Any:
        mine = Job.objects.select_related("owner").get(pk=job.pk)
        return queue_claim(mine, timezone.now(), f"racer-{i}")

    outcomes = race(claim)
    assert sorted(outcomes, key=str) == [None] * (RACERS - 1) + [True]
    assert AuditEntry.objects.filter(event_type="job.dispatched", target_id=job.pk).count() == 1
    assert Job.objects.get(pk=job.pk).start_claimed_at is not None
